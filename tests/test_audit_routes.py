"""The audit log over HTTP (``/api/v1/admin/audit``, ``/verify``, ``/checkpoint``) and the admin
pages' server side (``/-/admin``, ``/-/admin/audit``), in-process over a store with authentication
on: server admins only (404 for a member, 401 anonymous), filters and newest-first paging, a verify
that changes nothing and names the first bad entry of a tampered log, a checkpoint that records who
asked and covers that entry, and user-controlled text escaped in the pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tallymark.service import apikeys, audit, auditlog, memberships, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.errors import NotFound
from tallymark.service.store import open_store
from tallymark.settings import Settings
from tallymark.store.schema import audit_checkpoints, audit_log

ROOT = local_admin("root")
XSS = "<script>alert('xss')</script>"


def _seed(store: Any) -> dict[str, str]:
    keys = {"root": init_admin(store, "root").secret}
    workspaces.create_workspace(store, ROOT, "risk")
    users.add_user(store, ROOT, "mia", display_name="<img src=x onerror=alert(1)>")
    memberships.add_member(store, ROOT, "risk", "mia", "member")
    keys["mia"] = apikeys.create_key(store, ROOT, "mia", name=XSS).secret
    return keys


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    from tallymark.server.app import create_app

    settings = Settings(home=tmp_path / "srv", auth=True)
    seeding = open_store(settings)
    try:
        keys = _seed(seeding)
    finally:
        seeding.close()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c, keys, c.app.app.app.app.state.store  # RequestId → CrossSite → Limits → Dispatch


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _count(store: Any, table: Any) -> int:
    with store.db.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar() or 0


ROUTES = [
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/admin/audit/verify"),
    ("POST", "/api/v1/admin/audit/checkpoint"),
    ("GET", "/-/admin"),
    ("GET", "/-/admin/audit"),
]


@pytest.mark.parametrize("method,path", ROUTES)
def test_only_server_admins_reach_the_audit_routes_and_admin_pages(app, method, path):
    c, keys, store = app
    entries = _count(store, audit_log)
    assert c.request(method, path).status_code == 401
    r = c.request(method, path, headers=_h(keys["mia"]))
    assert r.status_code == 404 and "server admin" in r.json()["error"]["message"]
    assert _count(store, audit_log) == entries  # a refused checkpoint records nothing
    assert c.request(method, path, headers=_h(keys["root"])).status_code == 200


def test_the_service_refuses_non_admins_as_not_found(app):
    c, keys, store = app
    mia = apikeys.authenticate(store, keys["mia"])
    assert mia is not None and not mia.is_admin
    for call in (
        lambda: auditlog.list_entries(store, mia),
        lambda: auditlog.verify_report(store, mia),
        lambda: auditlog.entries_per_day(store, mia),
        lambda: auditlog.checkpoint_now(store, mia),
    ):
        with pytest.raises(NotFound):
            call()


def test_entries_are_newest_first_with_filters_and_paging(app):
    c, keys, store = app
    got = c.get("/api/v1/admin/audit", headers=_h(keys["root"])).json()
    seqs = [e["seq"] for e in got["entries"]]
    assert seqs == list(range(got["total"], 0, -1)) and got["nextBefore"] is None
    first = got["entries"][-1]
    assert first["action"] == "admin.init" and first["actor"] == "root" and first["prevHash"] == "0" * 64
    assert set(first) >= {"objectKind", "objectRef", "workspace", "requestId", "payloadSha256", "hash"}

    page1 = c.get("/api/v1/admin/audit?limit=2", headers=_h(keys["root"])).json()
    assert [e["seq"] for e in page1["entries"]] == seqs[:2] and page1["nextBefore"] == seqs[1]
    page2 = c.get(
        f"/api/v1/admin/audit?limit=2&before={page1['nextBefore']}", headers=_h(keys["root"])
    ).json()
    assert [e["seq"] for e in page2["entries"]] == seqs[2:4]

    by_action = c.get("/api/v1/admin/audit?action=api_key", headers=_h(keys["root"])).json()["entries"]
    assert by_action and {e["action"] for e in by_action} == {"api_key.create"}
    by_object = c.get("/api/v1/admin/audit?object=risk/mia", headers=_h(keys["root"])).json()["entries"]
    assert [e["action"] for e in by_object] == ["membership.add"]
    assert c.get("/api/v1/admin/audit?actor=nobody", headers=_h(keys["root"])).json()["entries"] == []
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert c.get(f"/api/v1/admin/audit?since={tomorrow}", headers=_h(keys["root"])).json()["entries"] == []
    r = c.get("/api/v1/admin/audit?since=yesterday", headers=_h(keys["root"]))
    assert r.status_code == 422 and "ISO date" in r.json()["error"]["message"]
    assert c.get("/api/v1/admin/audit?limit=0", headers=_h(keys["root"])).status_code == 422
    for bad in ("9" * 30, "\u0661\u0662", "2026-13-01"):
        assert (
            c.get("/api/v1/admin/audit", params={"since": bad}, headers=_h(keys["root"])).status_code == 422
        )
    assert auditlog.parse_since("1796083200000") == auditlog.parse_since("2026-12-01") == 1796083200000


def test_verify_is_a_read_and_names_the_first_bad_entry(app, tmp_path):
    c, keys, store = app
    key_file = Path(store.settings.audit_key_file)
    before = (_count(store, audit_log), _count(store, audit_checkpoints), key_file.exists())
    report = c.get("/api/v1/admin/audit/verify", headers=_h(keys["root"])).json()
    assert report["ok"] is True and report["problem"] is None and report["size"] == before[0]
    assert (_count(store, audit_log), _count(store, audit_checkpoints), key_file.exists()) == before

    with store.db.write() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == 3).values(actor="mallory"))
    report = c.get("/api/v1/admin/audit/verify", headers=_h(keys["root"])).json()
    assert report["ok"] is False and report["firstBad"] == 3 and "entry 3 was edited" in report["problem"]
    html = c.get("/-/admin/audit", headers=_h(keys["root"])).text
    assert 'data-ok="false"' in html and "First bad entry: #3" in html and "before=4" in html
    assert '<tr data-seq="3" class="bad">' in html
    r = c.post("/api/v1/admin/audit/checkpoint", headers=_h(keys["root"]))
    assert r.status_code == 409 and "refusing to sign" in r.json()["error"]["message"]


def test_a_checkpoint_records_who_asked_and_covers_that_entry(app):
    c, keys, store = app
    r = c.post("/api/v1/admin/audit/checkpoint", headers=_h(keys["root"]))
    assert r.status_code == 200, r.text
    cp = r.json()
    newest = audit.entries(store)[-1]
    assert (newest["actor"], newest["action"], newest["object_kind"]) == (
        "root",
        "audit.checkpoint",
        "audit_log",
    )
    assert cp["size"] == newest["seq"] and cp["head"] == newest["hash"]
    assert cp["note"].startswith(cp["origin"] + "\n") and cp["verifierKey"].startswith(cp["origin"] + "+")
    report = c.get("/api/v1/admin/audit/verify", headers=_h(keys["root"])).json()
    assert (
        report["ok"] and report["checkpointsMatched"] == 1 and report["lastCheckpoint"]["size"] == cp["size"]
    )
    assert audit.verify(store).ok


def test_the_pages_escape_user_controlled_text(app):
    c, keys, store = app
    html = c.get("/-/admin", headers=_h(keys["root"])).text
    assert XSS not in html and "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert keys["mia"] not in html and keys["root"] not in html  # no key is ever shown again
    hostile = c.get('/-/admin/audit?actor="><script>x</script>', headers=_h(keys["root"])).text
    assert "<script>x</script>" not in hostile and 'value="&quot;&gt;&lt;script&gt;' in hostile
    audit_html = c.get("/-/admin/audit", headers=_h(keys["root"])).text
    assert 'id="verify-banner"' in audit_html and 'data-ok="true"' in audit_html
    assert 'id="audit-chart"' in audit_html and "<script>" not in audit_html.split("<main>", 1)[1]


def test_entries_per_day_counts_each_utc_day(app):
    c, keys, store = app
    now = audit.entries(store)[-1]["time"]
    days = auditlog.entries_per_day(store, ROOT, days=3, now_ms=now)
    assert [d["day"] % auditlog.DAY_MS for d in days] == [0, 0, 0]
    assert sum(d["count"] for d in days) == len(audit.entries(store)) and days[-1]["count"] >= 1


def test_the_service_on_sqlite_and_postgresql(store):
    """The queries of service/auditlog.py on both databases: paging, filters, per-day counts
    (integer division of ms), verify and a checkpoint."""
    _seed(store)
    total = len(audit.entries(store))
    page = auditlog.list_entries(store, ROOT, limit=3)
    assert [e["seq"] for e in page["entries"]] == [total, total - 1, total - 2] and page["total"] == total
    rest = auditlog.list_entries(store, ROOT, before=page["nextBefore"], limit=1000)
    assert [e["seq"] for e in rest["entries"]] == list(range(total - 3, 0, -1)) and rest["nextBefore"] is None
    assert [e["action"] for e in auditlog.list_entries(store, ROOT, action="membership")["entries"]] == [
        "membership.add"
    ]
    assert (
        auditlog.list_entries(store, ROOT, action="api_key.create", object_ref="2")["entries"][0]["objectRef"]
        == "2"
    )
    assert auditlog.list_entries(store, ROOT, action="user_")["entries"] == []  # `_` is not a wildcard
    days = auditlog.entries_per_day(store, ROOT, days=7)
    assert len(days) == 7 and sum(d["count"] for d in days) == total
    assert all(d["day"] % auditlog.DAY_MS == 0 for d in days)
    assert auditlog.verify_report(store, ROOT)["ok"]
    cp = auditlog.checkpoint_now(store, ROOT)
    assert cp["size"] == total + 1
    report = auditlog.verify_report(store, ROOT)
    assert report["ok"] and report["checkpointsMatched"] == 1 and report["size"] == total + 1
