"""The caller seam on the tracking half of the service layer (issue 9, "First, the seam").

Every tracking write goes through ``guard.write`` (the permission check, the change and one audit
entry in one transaction) and every read through ``guard.allow`` with the workspace that owns the
experiment: a viewer is refused writes, a caller of another workspace gets the same NotFound as for
a key that does not exist, and each audited write appends exactly one entry.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from tallymark.service import assets, audit, batch, compat_support, experiments, reads, ui_reads
from tallymark.service.caller import Caller, local_admin
from tallymark.service.errors import Forbidden, NotFound
from tallymark.store.chunks import Series
from tallymark.store.schema import audit_log
from test_auth import world  # noqa: F401 - the module-scoped seeded auth server, one for this module

from servers import new_key

ADMIN = local_admin("tester")
MIA = Caller(user_id=1, name="mia", roles={"risk": "member"})  # logs experiments in risk
VERA = Caller(user_id=2, name="vera", roles={"risk": "viewer"})  # reads risk, writes nothing
OSCAR = Caller(user_id=3, name="oscar", roles={"ops": "admin"})  # admin of another workspace


def _rows(store) -> list[dict]:
    with store.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


def _new(store, caller=MIA, workspace="risk") -> str:
    key = new_key()
    experiments.create_experiment(store, caller, {"key": key, "workspace": workspace, "project": "fraud"})
    return key


def _asset(store, caller, key, upload_id="u1") -> dict:
    meta = {"file_name": "notes.txt", "upload_id": upload_id}
    return assets.add_asset(store, caller, key, meta, iter([b"hello"]))


def test_a_member_creates_and_the_experiment_is_theirs(store):
    key = _new(store)
    info = experiments.get_experiment(store, MIA, key)
    assert (info["workspace"], info["user"]) == ("risk", "mia")
    # With auth the body cannot name another user; the local admin (embedded home) still may.
    other = new_key()
    body = {"key": other, "workspace": "risk", "project": "fraud", "user": "someone"}
    assert experiments.create_experiment(store, MIA, body)["user"] == "mia"
    third = new_key()
    body = {"key": third, "workspace": "risk", "project": "fraud", "user": "someone"}
    assert experiments.create_experiment(store, ADMIN, body)["user"] == "someone"


def test_a_viewer_is_refused_every_write(store):
    key = _new(store)
    with pytest.raises(Forbidden):
        experiments.create_experiment(store, VERA, {"key": new_key(), "workspace": "risk", "project": "p"})
    with pytest.raises(Forbidden):
        batch.apply_batch(store, VERA, key, {"batch_id": "b1", "params": {"lr": 0.1}})
    with pytest.raises(Forbidden):
        _asset(store, VERA, key)
    with pytest.raises(Forbidden):
        experiments.end_experiment(store, VERA, key)
    with pytest.raises(Forbidden):
        compat_support.merge_item(store, VERA, key, "git", "git", {"branch": "main"})
    with pytest.raises(Forbidden):
        experiments.start_import(store, VERA, key)
    # ... and may read everything
    assert experiments.get_experiment(store, VERA, key)["status"] == "running"
    assert reads.parameters_summary(store, VERA, key) == []
    assert [w["name"] for w in experiments.list_workspaces(store, VERA)] == ["risk"]
    assert reads.query_experiments(store, VERA, "risk")["total"] == 1
    assert [a["action"] for a in _rows(store)] == ["experiment.create"]  # refusals leave no entry


def test_another_workspace_is_not_found_like_a_missing_key(store):
    key = _new(store)
    a = _asset(store, MIA, key)
    batch.apply_batch(store, MIA, key, {"batch_id": "b1", "params": {"lr": 0.1}})
    missing = new_key()
    reads_of = [
        lambda k: experiments.get_experiment(store, OSCAR, k),
        lambda k: reads.parameters_summary(store, OSCAR, k),
        lambda k: reads.metric_history(store, OSCAR, k, "loss"),
        lambda k: reads.metric_histories(store, OSCAR, [k], "loss"),
        lambda k: reads.get_items(store, OSCAR, k, "code"),
        lambda k: assets.list_assets(store, OSCAR, k),
        lambda k: assets.get_asset(store, OSCAR, k, a["assetId"]),
        lambda k: assets.asset_bytes(store, OSCAR, k, a["assetId"]),
        lambda k: ui_reads.experiment_counts(store, OSCAR, k),
        lambda k: ui_reads.experiments_by_keys(store, OSCAR, [k]),
    ]
    writes_of = [
        lambda k: batch.apply_batch(store, OSCAR, k, {"batch_id": "b2", "params": {"lr": 0.2}}),
        lambda k: experiments.end_experiment(store, OSCAR, k),
        lambda k: _asset(store, OSCAR, k, "u2"),
        lambda k: compat_support.reopen_experiment(store, OSCAR, k),
        lambda k: compat_support.set_experiment_times(store, OSCAR, k, None, None),
    ]
    for fn in reads_of + writes_of:
        with pytest.raises(NotFound) as theirs:
            fn(key)
        with pytest.raises(NotFound) as nobodys:
            fn(missing)
        assert str(theirs.value).replace(key, "K") == str(nobodys.value).replace(missing, "K")
    # An experiment of theirs under the same key space is not found either way round.
    with pytest.raises(NotFound):
        experiments.create_experiment(store, OSCAR, {"key": key, "workspace": "risk", "project": "fraud"})
    # Lists across workspaces show only the caller's.
    _new(store, OSCAR, "ops")
    assert [w["name"] for w in experiments.list_workspaces(store, OSCAR)] == ["ops"]
    assert [w["name"] for w in experiments.list_workspaces(store, ADMIN)] == ["ops", "risk"]
    with pytest.raises(NotFound, match="no workspace named 'risk'"):
        experiments.list_projects(store, OSCAR, "risk")
    with pytest.raises(NotFound):
        reads.query_experiments(store, OSCAR, "risk")
    with pytest.raises(NotFound):
        ui_reads.project_columns(store, OSCAR, "risk", "fraud")
    assert ui_reads.items_for_keys(store, OSCAR, [key], "code") == {key: []}
    # Nothing was written for any of it: the experiment still has one batch and is running.
    assert experiments.get_experiment(store, MIA, key)["status"] == "running"
    assert [r["action"] for r in _rows(store) if r["object_ref"] == key] == [
        "experiment.create",
        "asset.add",
        "experiment.log",
    ]


def test_one_audit_entry_per_batch_and_none_for_a_replay(store):
    key = _new(store)
    before = len(_rows(store))
    steps = np.arange(5_000, dtype=np.int64)
    series = [
        Series("loss", steps, np.linspace(1, 0, 5_000), steps * 10),
        Series("auc", steps, np.linspace(0, 1, 5_000), steps * 10),
    ]
    body = {
        "batch_id": "b1",
        "params": {"lr": 0.1},
        "others": {"rows": 10},
        "tags": ["baseline"],
    }
    out = batch.apply_batch(store, MIA, key, body, series)
    assert out == {"applied": True, "duplicate": False, "points": 10_000}
    rows = _rows(store)[before:]
    assert len(rows) == 1
    (entry,) = rows
    assert (
        entry["actor"],
        entry["action"],
        entry["object_kind"],
        entry["object_ref"],
        entry["workspace"],
    ) == (
        "mia",
        "experiment.log",
        "experiment",
        key,
        "risk",
    )
    # The payload hash covers the batch head and the points' bytes: another value, another hash.
    assert entry["payload_sha256"] == audit.payload_sha256(batch.batch_digest(batch.BatchIn(**body), series))
    other = [Series("loss", steps, np.linspace(1, 0, 5_000) + 1e-9, steps * 10), series[1]]
    assert batch.batch_digest(batch.BatchIn(**body), other) != batch.batch_digest(
        batch.BatchIn(**body), series
    )
    # The same batch again (a retry): acknowledged, not applied, not audited.
    assert batch.apply_batch(store, MIA, key, body, series)["duplicate"] is True
    assert len(_rows(store)) == before + 1
    assert audit.verify(store).ok


def test_each_tracking_write_is_one_entry_and_replays_are_none(store):
    key = new_key()
    body = {"key": key, "workspace": "risk", "project": "fraud"}
    experiments.create_experiment(store, MIA, body)
    experiments.create_experiment(store, MIA, body)  # idempotent: the same key again
    _asset(store, MIA, key)
    _asset(store, MIA, key)  # the same upload_id: a replayed upload
    compat_support.merge_item(store, MIA, key, "git", "git", {"branch": "main"})
    token = experiments.start_import(store, MIA, key)
    experiments.end_import(store, MIA, key, token)
    experiments.end_experiment(store, MIA, key)  # already ended: nothing changes
    compat_support.reopen_experiment(store, MIA, key)
    experiments.end_experiment(store, MIA, key)
    got = [(r["actor"], r["action"], r["object_kind"], r["object_ref"], r["workspace"]) for r in _rows(store)]
    exp = ("experiment", key, "risk")
    assert got == [
        ("mia", "experiment.create", *exp),
        ("mia", "asset.add", *exp),
        ("mia", "experiment.log", *exp),
        ("mia", "experiment.import", *exp),
        ("mia", "experiment.import", *exp),
        ("mia", "experiment.reopen", *exp),
        ("mia", "experiment.end", *exp),
    ]
    assert all(token not in str(r) for r in _rows(store))  # the import token is a secret
    assert audit.verify(store).ok


def test_the_local_admin_passes_every_check(store):
    key = _new(store, ADMIN, "anywhere")
    batch.apply_batch(store, ADMIN, key, {"batch_id": "b", "params": {"x": 1}})
    assert reads.parameters_summary(store, ADMIN, key)[0]["name"] == "x"
    assert [r["actor"] for r in _rows(store)] == ["tester", "tester"]


# --- over HTTP, with auth: the routes pass the key's caller to the same service functions ----------


def test_http_routes_pass_the_keys_caller(world):  # noqa: F811 - the seeded auth server of test_auth
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    key = new_key()
    body = {"key": key, "workspace": "risk", "project": "fraud", "user": "someone"}
    r = world.post("member", "/api/v1/experiments", json=body)
    assert r.status_code == 201 and r.json()["user"] == "mia", r.text  # the key says who, not the body
    assert world.post("viewer", "/api/v1/experiments", json=body | {"key": new_key()}).status_code == 403
    batch_path = f"/api/v1/experiments/{key}/batch"
    one = {"batch_id": "h1", "params": {"lr": 0.1}}
    assert world.post("viewer", batch_path, json=one).status_code == 403
    assert world.post("other", batch_path, json=one).status_code == 404
    assert world.get("other", f"/api/v1/experiments/{key}/params").status_code == 404
    assert world.post("member", batch_path, json=one).json()["applied"] is True
    assert world.post("member", batch_path, json=one).json()["duplicate"] is True
    assert world.get("viewer", f"/api/v1/experiments/{key}/params").json()["params"][0]["name"] == "lr"
    assert [w["name"] for w in world.get("other", "/api/v1/workspaces").json()["workspaces"]] == ["ops"]
    store = open_store(Settings(home=world.server.home))
    try:
        got = [(r["actor"], r["action"], r["workspace"]) for r in _rows(store) if r["object_ref"] == key]
        assert got == [("mia", "experiment.create", "risk"), ("mia", "experiment.log", "risk")]
        assert audit.verify(store).ok
    finally:
        store.close()
