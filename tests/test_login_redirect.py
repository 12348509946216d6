"""A person opening a UI page without a session lands on the login form, and comes back after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tallymark.service import apikeys, memberships, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    from tallymark.server.app import create_app

    settings = Settings(home=tmp_path / "srv", auth=True)
    store = open_store(settings)
    try:
        init_admin(store, "root")
        root = local_admin("root")
        workspaces.create_workspace(store, root, "risk")
        users.add_user(store, root, "mia")
        memberships.add_member(store, root, "risk", "mia", "member")
        key = apikeys.create_key(store, root, "mia").secret
    finally:
        store.close()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c, key


def test_a_browser_without_a_session_is_sent_to_the_login_form_and_back(client):
    c, key = client
    r = c.get("/risk/fraud?sort=name", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Frisk%2Ffraud%3Fsort%3Dname"
    form = c.get(r.headers["location"], headers=HTML)
    assert form.status_code == 200 and 'value="/risk/fraud?sort=name"' in form.text
    back = c.post("/login", data={"key": key, "next": "/risk/fraud?sort=name"}, follow_redirects=False,
                  headers={"Origin": "http://127.0.0.1"})  # fmt: skip
    assert back.status_code == 303 and back.headers["location"] == "/risk/fraud?sort=name"


@pytest.mark.parametrize("path", ["/api/v1/workspaces", "/risk", "/-/me"])
def test_scripts_and_the_api_still_get_the_json_401(client, path):
    c, _ = client
    accept = {} if path != "/api/v1/workspaces" else HTML  # the API answers JSON even to a browser
    r = c.get(path, headers=accept, follow_redirects=False)
    if path == "/-/me":
        assert r.status_code == 200  # public: says nobody is signed in
    else:
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_every_answer_carries_a_request_id_and_audit_entries_record_it(client):
    from tallymark.service import audit

    c, key = client
    sent = {"Authorization": f"Bearer {key}", "X-Request-Id": "ci-run-42"}
    mine = c.post(
        "/api/v1/experiments", headers=sent, json={"key": "e" * 32, "workspace": "risk", "project": "p"}
    )
    assert mine.status_code == 201 and mine.headers["x-request-id"] == "ci-run-42"
    fresh = c.get("/api/v1/health", headers={"X-Request-Id": "no spaces allowed"})
    assert len(fresh.headers["x-request-id"]) == 32  # not a sane token: a new id instead
    assert c.get("/api/v1/workspaces").headers["x-request-id"]  # a 401 too
    store = c.app.app.app.app.state.store
    entry = [e for e in audit.entries(store) if e["action"] == "experiment.create"][-1]
    assert entry["request_id"] == "ci-run-42" and entry["actor"] == "mia"


def test_a_login_is_audited_with_its_request_id(client):
    from tallymark.service import audit

    c, key = client
    headers = {"Origin": "http://127.0.0.1", "X-Request-Id": "login-7"}
    assert c.post("/login", data={"key": key}, headers=headers, follow_redirects=False).status_code == 303
    entry = [e for e in audit.entries(c.app.app.app.app.state.store) if e["action"] == "session.login"][-1]
    assert (entry["actor"], entry["request_id"]) == ("mia", "login-7")
