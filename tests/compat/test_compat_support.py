"""The service functions the Comet adapter needs (tallymark.service.compat_support), on SQLite and on
PostgreSQL (the ``store`` fixture runs both; PostgreSQL with the slow tests)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tallymark.service import artifacts, compat_support, experiments, reads, registry
from tallymark.service.caller import local_admin
from tallymark.service.errors import Conflict, Invalid, NotFound

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check
ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


def _exp(store, ws="w", project="p"):
    key = uuid.uuid4().hex
    experiments.create_experiment(
        store, local_admin("alice"), {"key": key, "workspace": ws, "project": project}
    )
    return key


def _blob(store, data: bytes) -> str:
    sha, _ = store.blobs.put(iter([data]), 1 << 20)
    assert sha == hashlib.sha256(data).hexdigest()
    return sha


def test_reopen_and_times(store):
    key = _exp(store)
    experiments.end_experiment(store, TESTER, key)
    assert compat_support.reopen_experiment(store, TESTER, key)["status"] == "running"
    out = compat_support.set_experiment_times(store, TESTER, key, 1_700_000_000_000, 1_700_000_100_000)
    assert out["created_at"] == 1_700_000_000_000 and out["ended_at"] is None  # still running
    experiments.end_experiment(store, TESTER, key)
    out = compat_support.set_experiment_times(store, TESTER, key, None, 1_700_000_100_000)
    assert out["ended_at"] == 1_700_000_100_000
    with pytest.raises(Invalid):
        compat_support.set_experiment_times(store, TESTER, key, 5, None)
    with pytest.raises(NotFound):
        compat_support.reopen_experiment(store, TESTER, uuid.uuid4().hex)


def test_merge_item_merges_nested_fields(store):
    key = _exp(store)
    compat_support.merge_item(
        store, TESTER, key, "environment", "environment", {"python": {"version": "3.11"}}
    )
    compat_support.merge_item(
        store, TESTER, key, "environment", "environment", {"python": {"executable": "/py"}}
    )
    compat_support.merge_item(store, TESTER, key, "environment", "environment", {"hostname": "h"})
    (item,) = reads.get_items(store, TESTER, key, "environment")
    assert item["data"] == {"python": {"version": "3.11", "executable": "/py"}, "hostname": "h"}
    with pytest.raises(Invalid):
        compat_support.merge_item(store, TESTER, key, "code", "c", {"source": 5})
    experiments.end_experiment(store, TESTER, key)
    with pytest.raises(Conflict):
        compat_support.merge_item(store, TESTER, key, "git", "git", {"branch": "main"})


def test_artifact_files_arrive_after_the_version(store):
    producer, other = _exp(store), _exp(store)
    v = artifacts.log_artifact_version(
        store,
        local_admin("alice"),
        "w",
        "data",
        {"artifact_type": "dataset", "experiment_key": producer, "aliases": ["raw"]},
        open_for_files=True,
    )
    assert v["version"] == "1.0.0" and v["files"] == []
    sha = _blob(store, b"hello")
    files = [{"logical_path": "a.txt", "sha256": sha}, {"logical_path": "r.csv", "uri": "s3://b/r.csv"}]
    out = compat_support.append_artifact_files(store, TESTER, "w", "data", "1.0.0", files, producer)
    assert out["size"] == 5 and [f["logicalPath"] for f in out["files"]] == ["a.txt", "r.csv"]
    # a retry is skipped; the same path with other content is refused
    assert (
        compat_support.append_artifact_files(store, TESTER, "w", "data", "1.0.0", files[:1], producer)["size"]
        == 5
    )
    with pytest.raises(Conflict):
        compat_support.append_artifact_files(
            store,
            TESTER,
            "w",
            "data",
            "1.0.0",
            [{"logical_path": "a.txt", "sha256": _blob(store, b"x")}],
            producer,
        )
    with pytest.raises(Conflict, match="not created by"):
        compat_support.append_artifact_files(store, TESTER, "w", "data", "1.0.0", files[:1], other)
    with pytest.raises(Invalid, match="upload it first"):
        compat_support.append_artifact_files(
            store, TESTER, "w", "data", "1.0.0", [{"logical_path": "b", "sha256": "0" * 64}], producer
        )
    experiments.end_experiment(store, TESTER, producer)  # its versions are closed with it
    with pytest.raises(Conflict, match="is closed"):
        compat_support.append_artifact_files(
            store, TESTER, "w", "data", "1.0.0", [{"logical_path": "late.txt", "uri": "s3://b/l"}], producer
        )


def test_aliases_are_set_exactly_and_move(store):
    key = _exp(store)
    for _ in range(2):
        artifacts.log_artifact_version(
            store,
            local_admin("alice"),
            "w",
            "d",
            {"artifact_type": "dataset", "experiment_key": key, "aliases": ["raw"]},
        )
    assert artifacts.get_artifact_version(store, ADMIN, "w", "d", "raw")["version"] == "2.0.0"
    out = compat_support.set_artifact_aliases(store, TESTER, "w", "d", "1.0.0", ["raw", "best"])
    assert out["aliases"] == ["best", "raw"]
    assert artifacts.get_artifact_version(store, ADMIN, "w", "d", "2.0.0")["aliases"] == []
    assert compat_support.set_artifact_aliases(store, TESTER, "w", "d", "1.0.0", [])["aliases"] == []
    with pytest.raises(Invalid):
        compat_support.set_artifact_aliases(store, TESTER, "w", "d", "1.0.0", ["1.2.3"])


def test_model_files_one_by_one_and_remote(store):
    key = _exp(store)
    a, b = _blob(store, b"w1"), _blob(store, b"w2")
    compat_support.add_model_files(store, TESTER, key, "m", [{"logical_path": "m/a.bin", "sha256": a}])
    out = compat_support.add_model_files(store, TESTER, key, "m", [{"logical_path": "m/b.bin", "sha256": b}])
    assert [f["logicalPath"] for f in out["files"]] == ["m/a.bin", "m/b.bin"]
    remote = compat_support.add_model_files(
        store, TESTER, key, "r", [], remote_uri="s3://m/r", metadata={"k": 1}
    )
    assert remote["remoteUri"] == "s3://m/r" and remote["metadata"] == {"k": 1}
    with pytest.raises(Conflict):
        compat_support.add_model_files(store, TESTER, key, "r", [], remote_uri="s3://m/other")
    with pytest.raises(Invalid):
        compat_support.add_model_files(store, TESTER, key, "empty", [])
    assert [m["name"] for m in registry.list_logged_models(store, ADMIN, key)] == ["m", "r"]


def test_comet_file_uploads_and_aliases_are_audited_once_each(store):
    from tallymark.service import audit

    producer = _exp(store)
    artifacts.log_artifact_version(
        store,
        TESTER,
        "w",
        "data",
        {"artifact_type": "dataset", "experiment_key": producer},
        open_for_files=True,
    )
    before = len(audit.entries(store))
    files = [{"logical_path": "a.txt", "sha256": _blob(store, b"hello")}]
    compat_support.append_artifact_files(store, TESTER, "w", "data", "1.0.0", files, producer)
    compat_support.append_artifact_files(store, TESTER, "w", "data", "1.0.0", files, producer)  # a retry
    compat_support.set_artifact_aliases(store, TESTER, "w", "data", "1.0.0", ["raw"])
    compat_support.add_model_files(
        store, TESTER, producer, "m", [{"logical_path": "m.bin", "sha256": _blob(store, b"m")}]
    )
    compat_support.add_model_files(
        store, TESTER, producer, "m", [{"logical_path": "n.bin", "sha256": _blob(store, b"n")}]
    )
    new = audit.entries(store)[before:]
    assert [(e["action"], e["object_ref"]) for e in new] == [
        ("artifact_version.add_files", "w/data:1.0.0"),
        ("artifact_version.alias", "w/data:1.0.0"),
        ("model.log", producer),
        ("model.add_files", producer),
    ]
    assert audit.verify(store).ok
