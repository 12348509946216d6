"""The caller seam on the registry half: artifacts, lineage, the model registry and blobs.

Every operation takes the Caller: a viewer is refused writes (Forbidden), a caller of another
workspace gets the 404 of an object that does not exist (same message), approvals need the approver
flag and someone other than the requester, each audited write appends exactly one entry (an
approval also one per status it moves, documented in docs/security.md), replays append none, the
chain verifies, lineage shows only what the caller may see, and whether a blob is stored is not told
across workspaces (tallymark.service.files). Service tests run on SQLite and PostgreSQL; the HTTP
tests run in process with auth on and real keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tallymark.service import artifacts, audit, experiments, files, lineage, registry
from tallymark.service.caller import Caller, local_admin
from tallymark.service.errors import Forbidden, Invalid, NotFound
from tallymark.store.schema import audit_log

from servers import new_key

ADMIN = local_admin("root")
VIEWER = Caller(user_id=1, name="vera", roles={"risk": "viewer"})
MEMBER = Caller(user_id=2, name="mia", roles={"risk": "member"})
APPROVER = Caller(user_id=3, name="apu", roles={"risk": "member"}, approver=frozenset({"risk"}))
RISK_ADMIN = Caller(user_id=4, name="ada", roles={"risk": "admin"})
OTHER = Caller(user_id=5, name="bob", roles={"ops": "member"}, approver=frozenset({"ops"}))
BOTH = Caller(user_id=6, name="bo", roles={"risk": "viewer", "ops": "viewer"})


def _exp(store, ws: str = "risk") -> str:
    key = new_key()
    experiments.create_experiment(store, local_admin("root"), {"key": key, "workspace": ws, "project": "p"})
    return key


def _blob(store, data: bytes, caller: Caller = MEMBER) -> dict[str, Any]:
    """Uploaded as the SDK does (``blob.put``): the uploader may reference it."""
    return files.put_blob(store, caller, iter([data]), hashlib.sha256(data).hexdigest())


def _entries(store) -> list[dict[str, Any]]:
    with store.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


def _count(store) -> int:
    with store.db.read() as conn:
        return conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0


@pytest.fixture
def world(store) -> dict[str, Any]:
    """risk: a dataset made and consumed by experiments, a model version with a pending production
    request by mia; ops: an experiment that consumed risk's dataset (made by the local admin)."""
    prep, train, ops_exp = _exp(store), _exp(store), _exp(store, "ops")
    f = _blob(store, b"secret,rows\n1,2\n")
    body = {"artifact_type": "dataset", "experiment_key": prep, "aliases": ["raw"]}
    ds = artifacts.log_artifact_version(
        store, MEMBER, "risk", "data", {**body, "files": [{"logical_path": "d.csv", **f}]}
    )
    artifacts.consume_artifact_version(store, MEMBER, "risk", "data", "raw", train)
    artifacts.consume_artifact_version(store, ADMIN, "risk", "data", "raw", ops_exp)
    mf = _blob(store, b'{"trees": 1}')
    registry.log_model(store, MEMBER, train, {"name": "m", "files": [{"logical_path": "m.json", **mf}]})
    mv = registry.register_model(
        store, MEMBER, "risk", "m", {"experiment_key": train, "experiment_model": "m"}
    )
    req = registry.request_status(store, MEMBER, "risk", "m", mv["version"], {"status": "production"})
    return {
        "prep": prep,
        "train": train,
        "ops": ops_exp,
        "sha": f["sha256"],
        "model_sha": mf["sha256"],
        "ds": ds["version"],
        "mv": mv["version"],
        "req": req["id"],
    }


# --- a viewer is refused every write ------------------------------------------------------------


def _writes(w: dict[str, Any]) -> dict[str, Callable[[Any, Caller], Any]]:
    return {
        "artifact.log": lambda s, c: artifacts.log_artifact_version(
            s, c, "risk", "data", {"artifact_type": "dataset"}
        ),
        "artifact.consume": lambda s, c: artifacts.consume_artifact_version(
            s, c, "risk", "data", "raw", w["prep"]
        ),
        "artifact.delete": lambda s, c: artifacts.delete_artifact_version(s, c, "risk", "data", w["ds"]),
        "model.log": lambda s, c: registry.log_model(
            s, c, w["prep"], {"name": "x", "remote_uri": "s3://b/x"}
        ),
        "model.register": lambda s, c: registry.register_model(
            s, c, "risk", "m", {"experiment_key": w["train"], "experiment_model": "m"}
        ),
        "model.set_status": lambda s, c: registry.set_status(
            s, c, "risk", "m", w["mv"], {"status": "staging"}
        ),
        "model.request": lambda s, c: registry.request_status(
            s, c, "risk", "m", w["mv"], {"status": "staging"}
        ),
        "model.tag": lambda s, c: registry.add_tag(s, c, "risk", "m", w["mv"], "champion"),
        "request.approve": lambda s, c: registry.decide(s, c, w["req"], True, None),
        "request.reject": lambda s, c: registry.decide(s, c, w["req"], False, None),
    }


@pytest.mark.parametrize(
    "op",
    [
        "artifact.log",
        "artifact.consume",
        "artifact.delete",
        "model.log",
        "model.register",
        "model.set_status",
        "model.request",
        "model.tag",
        "request.approve",
        "request.reject",
    ],
)
def test_a_viewer_is_refused_every_write_and_nothing_is_recorded(store, world, op):
    before = _count(store)
    with pytest.raises(Forbidden):
        _writes(world)[op](store, VIEWER)
    assert _count(store) == before


def test_deleting_a_version_needs_a_workspace_admin(store, world):
    with pytest.raises(Forbidden):
        artifacts.delete_artifact_version(store, MEMBER, "risk", "data", world["ds"])
    spare = artifacts.log_artifact_version(store, MEMBER, "risk", "spare", {"artifact_type": "dataset"})
    assert artifacts.delete_artifact_version(store, RISK_ADMIN, "risk", "spare", spare["version"])


# --- another workspace: the 404 of what does not exist ------------------------------------------


def _same_404(call: Callable[[Caller], Any], missing: Callable[[Caller], Any], swap: tuple[str, str]) -> None:
    """``OTHER`` on the real object gets NotFound with the message ``ADMIN`` gets for a missing one."""
    with pytest.raises(NotFound) as theirs:
        call(OTHER)
    with pytest.raises(NotFound) as none:
        missing(ADMIN)
    assert str(theirs.value).replace(*swap) == str(none.value)


def test_another_workspace_gets_the_404_of_a_missing_object_on_reads_and_writes(store, world):
    ghost, gkey = ("data", "ghost"), (world["train"], "0" * 32)
    for fn in (
        lambda c, n="data": artifacts.get_artifact_version(store, c, "risk", n),
        lambda c, n="data": artifacts.list_versions(store, c, "risk", n),
        lambda c, n="data": artifacts.artifact_file(store, c, "risk", n, "1.0.0", world["sha"]),
        lambda c, n="data": lineage.get_lineage(store, c, f"artifact:risk/{n}:raw"),
    ):
        _same_404(fn, lambda c, fn=fn: fn(c, "ghost"), ghost)
    for fn in (
        lambda c, n="m": registry.get_model(store, c, "risk", n),
        lambda c, n="m": registry.get_version(store, c, "risk", n, world["mv"]),
        lambda c, n="m": registry.list_requests(store, c, "risk", n),
        lambda c, n="m": registry.training_inputs(store, c, "risk", n, world["mv"]),
        lambda c, n="m": registry.set_status(store, c, "risk", n, world["mv"], {"status": "staging"}),
        lambda c, n="m": registry.add_tag(store, c, "risk", n, world["mv"], "t"),
        lambda c, n="m": registry.model_file(store, c, "risk", n, world["mv"], world["model_sha"]),
        lambda c, n="m": lineage.get_lineage(store, c, f"model:risk/{n}:{world['mv']}"),
    ):
        _same_404(fn, lambda c, fn=fn: fn(c, "ghost"), ("'m'", "'ghost'"))
    for fn in (
        lambda c, k=world["train"]: registry.list_logged_models(store, c, k),
        lambda c, k=world["train"]: registry.log_model(store, c, k, {"name": "x", "remote_uri": "s3://b/x"}),
        lambda c, k=world["train"]: lineage.get_lineage(store, c, f"experiment:{k}"),
    ):
        _same_404(fn, lambda c, fn=fn: fn(c, "0" * 32), gkey)
    with pytest.raises(NotFound) as theirs:  # a create: for the local admin it would create it
        artifacts.log_artifact_version(store, OTHER, "risk", "data", {"artifact_type": "dataset"})
    assert str(theirs.value) == "no artifact 'data' in workspace 'risk'"
    # A status request of risk, decided by an approver of ops.
    _same_404(
        lambda c: registry.decide(store, c, world["req"], True, None),
        lambda c: registry.decide(store, c, 999_999, True, None),
        (str(world["req"]), "999999"),
    )
    # A whole workspace: its lists.
    for fn in (
        lambda c, ws="risk": artifacts.list_artifacts(store, c, ws),
        lambda c, ws="risk": registry.list_models(store, c, ws),
    ):
        _same_404(fn, lambda c, fn=fn: fn(c, "nowhere"), ("'risk'", "'nowhere'"))


def test_a_member_of_ops_cannot_consume_risks_dataset_nor_log_into_risk(store, world):
    with pytest.raises(NotFound, match="no artifact 'data' in workspace 'risk'"):
        artifacts.consume_artifact_version(store, OTHER, "risk", "data", "raw", world["ops"])
    with pytest.raises(NotFound, match="no experiment"):  # ops's own artifact, risk's experiment
        artifacts.log_artifact_version(
            store, OTHER, "ops", "d", {"artifact_type": "dataset", "experiment_key": world["prep"]}
        )


# --- lineage shows only what the caller may see -------------------------------------------------


def _workspaces_of(graph: dict[str, Any]) -> set[str]:
    return {n.get("workspace") for n in graph["nodes"]}


def test_lineage_leaves_out_nodes_of_other_workspaces(store, world):
    full = lineage.get_lineage(store, ADMIN, "artifact:risk/data:raw", "both")
    assert _workspaces_of(full) == {"risk", "ops"}
    mine = lineage.get_lineage(store, MEMBER, "artifact:risk/data:raw", "both")
    assert _workspaces_of(mine) == {"risk"}
    assert {n["ref"] for n in mine["nodes"]} == {n["ref"] for n in full["nodes"] if n["workspace"] == "risk"}
    refs = {n["ref"] for n in mine["nodes"]}
    assert all(e["src"] in refs and e["dst"] in refs for e in mine["edges"])
    theirs = lineage.get_lineage(store, OTHER, f"experiment:{world['ops']}", "both")
    assert [n["ref"] for n in theirs["nodes"]] == [f"experiment:{world['ops']}"] and theirs["edges"] == []
    assert _workspaces_of(lineage.get_lineage(store, BOTH, f"experiment:{world['ops']}")) == {"risk", "ops"}
    # The consumers listed with a version are filtered the same way.
    (v,) = artifacts.list_versions(store, MEMBER, "risk", "data")
    assert {c["workspace"] for c in v["consumers"]} == {"risk"}
    (v,) = artifacts.list_versions(store, ADMIN, "risk", "data")
    assert {c["workspace"] for c in v["consumers"]} == {"risk", "ops"}


# --- four eyes ----------------------------------------------------------------------------------


def test_approvals_need_the_approver_flag_and_another_person(store, world):
    with pytest.raises(Forbidden, match="not an approver"):
        registry.decide(store, RISK_ADMIN, world["req"], True, None)  # admin of risk, but no flag
    self_request = Caller(user_id=2, name="mia", roles={"risk": "member"}, approver=frozenset({"risk"}))
    with pytest.raises(Forbidden, match="four eyes"):
        registry.decide(store, self_request, world["req"], True, None)
    with pytest.raises(NotFound):  # an approver of ops is nobody in risk
        registry.decide(store, OTHER, world["req"], True, None)
    before = _count(store)
    done = registry.decide(store, APPROVER, world["req"], True, {"comment": "reviewed"})
    assert done["state"] == "approved" and done["decidedBy"] == "apu"
    ref = f"risk/m:{world['mv']}"
    assert [(e["actor"], e["action"], e["object_ref"]) for e in _entries(store)[before:]] == [
        ("apu", "model_version.approve", ref),
        ("apu", "model_version.status", ref),
    ]


# --- one entry per audited write, none for a replay ---------------------------------------------


def test_each_write_appends_one_entry_with_its_action_object_and_workspace(store, world):
    k = world["prep"]
    opened = artifacts.log_artifact_version(
        store, ADMIN, "risk", "up", {"artifact_type": "dataset", "experiment_key": k}, open_for_files=True
    )
    ver = opened["version"]
    cases: list[tuple[Callable[[], Any], tuple[str, str, str, str | None]]] = [
        (
            lambda: artifacts.log_artifact_version(
                store, MEMBER, "risk", "data", {"artifact_type": "dataset"}
            ),
            ("artifact_version.log", "artifact_version", "risk/data:2.0.0", "risk"),
        ),
        (
            lambda: artifacts.consume_artifact_version(store, MEMBER, "risk", "data", "2.0.0", k),
            ("artifact_version.consume", "artifact_version", "risk/data:2.0.0", "risk"),
        ),
        (
            lambda: artifacts.close_artifact_version(store, MEMBER, "risk", "up", ver, k),
            ("artifact_version.close", "artifact_version", f"risk/up:{ver}", "risk"),
        ),
        (
            lambda: registry.log_model(store, MEMBER, k, {"name": "x", "remote_uri": "s3://b/x"}),
            ("model.log", "experiment", k, "risk"),
        ),
        (
            lambda: registry.register_model(
                store, MEMBER, "risk", "m", {"experiment_key": k, "experiment_model": "x"}
            ),
            ("model_version.register", "model_version", "risk/m:2.0.0", "risk"),
        ),
        (
            lambda: registry.set_status(store, MEMBER, "risk", "m", "2.0.0", {"status": "staging"}),
            ("model_version.status", "model_version", "risk/m:2.0.0", "risk"),
        ),
        (
            lambda: registry.add_tag(store, MEMBER, "risk", "m", "2.0.0", "champion"),
            ("model_version.tag", "model_version", "risk/m:2.0.0", "risk"),
        ),
        (
            lambda: registry.decide(store, APPROVER, world["req"], False, {"comment": "no"}),
            ("model_version.reject", "model_version", f"risk/m:{world['mv']}", "risk"),
        ),
        (
            lambda: artifacts.delete_artifact_version(store, RISK_ADMIN, "risk", "up", ver),
            ("artifact_version.delete", "artifact_version", f"risk/up:{ver}", "risk"),
        ),
    ]
    for call, (action, kind, ref, ws) in cases:
        before = _count(store)
        call()
        new = _entries(store)[before:]
        assert [(e["action"], e["object_kind"], e["object_ref"], e["workspace"]) for e in new] == [
            (action, kind, ref, ws)
        ], action
    # Replays change nothing and append nothing.
    replays = [
        lambda: artifacts.consume_artifact_version(store, MEMBER, "risk", "data", "2.0.0", k),
        lambda: registry.add_tag(store, MEMBER, "risk", "m", "2.0.0", "champion"),
    ]
    for call in replays:
        before = _count(store)
        call()
        assert _count(store) == before
    assert audit.verify(store).ok


def test_a_non_production_request_is_its_request_then_its_status(store, world):
    before = _count(store)
    registry.request_status(store, MEMBER, "risk", "m", world["mv"], {"status": "staging"})
    assert [e["action"] for e in _entries(store)[before:]] == [
        "model_version.request",
        "model_version.status",
    ]
    assert audit.verify(store).ok


def test_closing_twice_appends_one_entry(store, world):
    v = artifacts.log_artifact_version(
        store,
        MEMBER,
        "risk",
        "up",
        {"artifact_type": "dataset", "experiment_key": world["prep"]},
        open_for_files=True,
    )
    before = _count(store)
    for _ in range(2):
        artifacts.close_artifact_version(store, MEMBER, "risk", "up", v["version"], world["prep"])
    assert _count(store) == before + 1


# --- blobs: nothing told across workspaces ------------------------------------------------------


def test_blobs_missing_does_not_tell_another_workspace_what_is_stored(store, world):
    stored, absent = world["sha"], hashlib.sha256(b"never stored").hexdigest()
    assert files.missing_blobs(store, MEMBER, [stored, absent]) == [absent]
    assert files.missing_blobs(store, VIEWER, [stored]) == []
    # To ops, risk's stored blob looks exactly like one that is not stored.
    assert files.missing_blobs(store, OTHER, [stored, absent]) == [stored, absent]
    spec = lambda sha: {"artifact_type": "dataset", "files": [{"logical_path": "f", "sha256": sha}]}  # noqa: E731
    with pytest.raises(Invalid) as a:
        artifacts.log_artifact_version(store, OTHER, "ops", "copy", spec(stored))
    with pytest.raises(Invalid) as b:
        artifacts.log_artifact_version(store, OTHER, "ops", "copy", spec(absent))
    assert str(a.value).replace(stored, absent) == str(b.value)
    with pytest.raises(Invalid):
        registry.log_model(
            store, OTHER, world["ops"], {"name": "m", "files": [{"logical_path": "f", "sha256": stored}]}
        )
    # Uploading wrong bytes under the stored hash: the answer of a hash that is not stored.
    with pytest.raises(Invalid) as a:
        files.put_blob(store, OTHER, iter([b"guess"]), stored)
    with pytest.raises(Invalid) as b:
        files.put_blob(store, OTHER, iter([b"guess"]), absent)
    assert str(a.value).replace(stored, absent) == str(b.value)
    # The right bytes prove possession: recorded once, then the blob is theirs to see and reference.
    before = _count(store)
    assert files.put_blob(store, OTHER, iter([b"secret,rows\n1,2\n"]), stored) == {
        "sha256": stored,
        "size": 16,
    }
    (e,) = _entries(store)[before:]
    assert (e["actor"], e["action"], e["object_kind"], e["object_ref"]) == ("bob", "blob.put", "blob", stored)
    assert files.missing_blobs(store, OTHER, [stored]) == []
    assert (
        artifacts.log_artifact_version(store, OTHER, "ops", "copy", spec(stored))["files"][0]["sha256"]
        == stored
    )
    # Putting a blob one can already see changes nothing and is not recorded again.
    before = _count(store)
    files.put_blob(store, MEMBER, iter([b"anything: not read"]), stored)
    assert _count(store) == before
    assert audit.verify(store).ok


def test_raw_blob_reads_are_for_server_admins_and_files_go_through_their_owner(store, world):
    with pytest.raises(NotFound):
        files.read_blob(store, MEMBER, world["sha"])
    size, chunks = files.read_blob(store, ADMIN, world["sha"])
    assert b"".join(chunks) == b"secret,rows\n1,2\n" and size == 16
    _, chunks = artifacts.artifact_file(store, VIEWER, "risk", "data", "raw", world["sha"])
    assert b"".join(chunks) == b"secret,rows\n1,2\n"
    _, chunks = registry.model_file(store, VIEWER, "risk", "m", world["mv"], world["model_sha"])
    assert b"".join(chunks) == b'{"trees": 1}'
    with pytest.raises(NotFound, match="has no file"):  # a blob that is not this version's
        artifacts.artifact_file(store, VIEWER, "risk", "data", "raw", world["model_sha"])


# --- over HTTP, with auth on -------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str], dict[str, Any]]]:
    from fastapi.testclient import TestClient

    from tallymark.server.app import create_app
    from tallymark.service import apikeys, memberships, users, workspaces
    from tallymark.service.bootstrap import init_admin
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    settings = Settings(home=tmp_path / "srv", auth=True)
    store = open_store(settings)
    try:
        init_admin(store, "root")
        for ws in ("risk", "ops"):
            workspaces.create_workspace(store, ADMIN, ws)
        keys = {}
        for role, (name, ws, r, appr) in {
            "viewer": ("vera", "risk", "viewer", False),
            "member": ("mia", "risk", "member", False),
            "approver": ("apu", "risk", "member", True),
            "other": ("bob", "ops", "member", False),
        }.items():
            users.add_user(store, ADMIN, name)
            memberships.add_member(store, ADMIN, ws, name, r, approver=appr)
            keys[role] = apikeys.create_key(store, ADMIN, name).secret
        train = _exp(store)
        f = _blob(store, b"rows", ADMIN)
        artifacts.log_artifact_version(
            store, ADMIN, "risk", "data", {"artifact_type": "dataset", "files": [{"logical_path": "d", **f}]}
        )
        registry.log_model(store, ADMIN, train, {"name": "m", "remote_uri": "s3://b/m"})
        mv = registry.register_model(
            store, local_admin("mia"), "risk", "m", {"experiment_key": train, "experiment_model": "m"}
        )
        req = registry.request_status(
            store, local_admin("mia"), "risk", "m", mv["version"], {"status": "production"}
        )
        facts = {"sha": f["sha256"], "req": req["id"]}
    finally:
        store.close()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c, keys, facts


def _h(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def test_over_http_blobs_files_and_approvals_follow_the_same_rules(api):
    c, keys, facts = api
    sha = facts["sha"]
    missing = lambda role: c.post("/api/v1/blobs/missing", json={"sha256": [sha]}, headers=_h(keys, role))  # noqa: E731
    assert missing("viewer").json() == {"missing": []}
    assert missing("other").json() == {"missing": [sha]}
    assert c.get(f"/api/v1/blobs/{sha}", headers=_h(keys, "member")).status_code == 404
    path = f"/api/v1/workspaces/risk/artifacts/data/versions/1.0.0/blobs/{sha}"
    r = c.get(path, headers=_h(keys, "viewer"))
    assert r.status_code == 200 and r.content == b"rows"
    assert c.get(path, headers=_h(keys, "other")).status_code == 404
    r = c.post(f"/api/v1/requests/{facts['req']}/approve", json={}, headers=_h(keys, "member"))
    assert r.status_code == 403, r.text  # no approver flag
    r = c.post(f"/api/v1/requests/{facts['req']}/approve", json={}, headers=_h(keys, "approver"))
    assert r.status_code == 200 and r.json()["decidedBy"] == "apu"
    r = c.get("/api/v1/lineage", params={"node": "artifact:risk/data:1.0.0"}, headers=_h(keys, "other"))
    assert r.status_code == 404
