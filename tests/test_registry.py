"""Artifacts, lineage and the registry in the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tallymark.service import artifacts, experiments, gc, lineage, registry
from tallymark.service.caller import local_admin
from tallymark.service.errors import Conflict, Forbidden, Invalid, NotFound

from servers import new_key

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check
ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


def _exp(store, name="e"):
    key = new_key()
    experiments.create_experiment(
        store, local_admin("alice"), {"key": key, "workspace": "risk", "project": "fraud", "name": name}
    )
    return key


def _blob(store, data: bytes) -> dict:
    sha, size = store.blobs.put(iter([data]), 1 << 30)
    assert sha == hashlib.sha256(data).hexdigest()
    return {"sha256": sha, "size": size}


def _dataset(store, key, alias, data=b"a,b\n1,2\n", **kw):
    body = {
        "artifact_type": "dataset",
        "aliases": [alias],
        "metadata": {"alias": alias},
        "files": [
            {"logical_path": "data/creditcard.csv", **_blob(store, data)},
            {"logical_path": "remote.csv", "uri": "s3://bank/creditcard.csv", "metadata": {"rows": 3}},
        ],
        "experiment_key": key,
        **kw,
    }
    return artifacts.log_artifact_version(store, local_admin("alice"), "risk", "fraud-dataset", body)


def test_versions_aliases_and_immutability(store):
    k = _exp(store)
    v1 = _dataset(store, k, "raw")
    v2 = _dataset(store, k, "preprocessed", data=b"scaled")
    assert (v1["version"], v2["version"]) == ("1.0.0", "2.0.0")
    v3 = _dataset(store, k, "raw", data=b"again", version="2.1.0", version_tags=["fixed"])
    assert v3["version"] == "2.1.0" and v3["versionTags"] == ["fixed"]
    # the alias moved from 1.0.0 to 2.1.0
    assert artifacts.get_artifact_version(store, ADMIN, "risk", "fraud-dataset", "raw")["version"] == "2.1.0"
    assert artifacts.get_artifact_version(store, ADMIN, "risk", "fraud-dataset", "1.0.0")["aliases"] == []
    assert artifacts.get_artifact_version(store, ADMIN, "risk", "fraud-dataset")["version"] == "2.1.0"
    assert _dataset(store, k, "x")["version"] == "3.0.0"
    with pytest.raises(Conflict, match="immutable"):
        _dataset(store, k, "y", version="2.1.0")
    with pytest.raises(Conflict, match="type"):
        artifacts.log_artifact_version(
            store, local_admin("alice"), "risk", "fraud-dataset", {"artifact_type": "model"}
        )
    with pytest.raises(Invalid):
        _dataset(store, k, "z", version="v2")
    with pytest.raises(NotFound):
        artifacts.get_artifact_version(store, ADMIN, "risk", "fraud-dataset", "nope")
    files = {f["logicalPath"]: f for f in v1["files"]}
    assert files["remote.csv"]["uri"] == "s3://bank/creditcard.csv" and files["remote.csv"]["sha256"] is None
    assert files["data/creditcard.csv"]["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert [a["name"] for a in artifacts.list_artifacts(store, ADMIN, "risk")] == ["fraud-dataset"]


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "a/../../b", "/abs", "%2e%2e/x", "%252e%252e/x", "a\\b", "a\x00b", "C:\\x"]
)
def test_unsafe_logical_paths_are_refused(store, bad):
    k = _exp(store)
    with pytest.raises(Invalid, match="unsafe"):
        artifacts.log_artifact_version(
            store,
            local_admin("alice"),
            "risk",
            "d",
            {
                "artifact_type": "dataset",
                "experiment_key": k,
                "files": [{"logical_path": bad, **_blob(store, b"x")}],
            },
        )
    with pytest.raises(NotFound):
        artifacts.get_artifact_version(store, ADMIN, "risk", "d")


def test_files_must_be_uploaded_first(store):
    with pytest.raises(Invalid, match="upload it first"):
        artifacts.log_artifact_version(
            store,
            local_admin("alice"),
            "risk",
            "d",
            {"artifact_type": "dataset", "files": [{"logical_path": "x", "sha256": "0" * 64}]},
        )
    with pytest.raises(Invalid, match="either sha256"):
        artifacts.log_artifact_version(
            store,
            local_admin("alice"),
            "risk",
            "d",
            {"artifact_type": "dataset", "files": [{"logical_path": "x"}]},
        )


def _model_pipeline(store):
    prep = _exp(store, "prep")
    raw = _dataset(store, prep, "raw")
    artifacts.consume_artifact_version(store, ADMIN, "risk", "fraud-dataset", "raw", prep)
    pre = _dataset(store, prep, "preprocessed", data=b"scaled")
    train = _exp(store, "train")
    artifacts.consume_artifact_version(store, ADMIN, "risk", "fraud-dataset", "preprocessed", train)
    registry.log_model(
        store,
        ADMIN,
        train,
        {"name": "fraud-xgb", "files": [{"logical_path": "model.json", **_blob(store, b'{"trees": 1}')}]},
    )
    mv = registry.register_model(
        store,
        local_admin("alice"),
        "risk",
        "fraud-xgb",
        {"experiment_key": train, "experiment_model": "fraud-xgb"},
    )
    return raw, pre, train, mv


def test_lineage_reaches_both_dataset_versions_with_hashes(store):
    raw, pre, train, mv = _model_pipeline(store)
    inputs = registry.training_inputs(store, ADMIN, "risk", "fraud-xgb", mv["version"])
    got = {(n["version"], tuple(sorted(f["sha256"] or f["uri"] for f in n["files"]))) for n in inputs}
    assert got == {
        (raw["version"], tuple(sorted([raw["files"][0]["sha256"], raw["files"][1]["uri"]]))),
        (pre["version"], tuple(sorted([pre["files"][0]["sha256"], pre["files"][1]["uri"]]))),
    }
    g = lineage.get_lineage(store, ADMIN, f"experiment:{train}", "both")
    relations = {(e["src"].split(":")[0], e["relation"], e["dst"].split(":")[0]) for e in g["edges"]}
    assert ("artifact", "consumed", "experiment") in relations
    assert ("experiment", "registered_from", "model") in relations
    down = lineage.get_lineage(store, ADMIN, "artifact:risk/fraud-dataset:raw", "downstream")
    assert any(n["kind"] == "model_version" for n in down["nodes"])
    with pytest.raises(Invalid):
        lineage.get_lineage(store, ADMIN, "nonsense")
    with pytest.raises(NotFound):
        lineage.get_lineage(store, ADMIN, "model:risk/fraud-xgb:9.0.0")


def test_four_eyes_promotion_and_history(store):
    _, _, train, mv = _model_pipeline(store)
    v = mv["version"]
    with pytest.raises(Forbidden, match="approval"):
        registry.set_status(store, local_admin("alice"), "risk", "fraud-xgb", v, {"status": "production"})
    registry.set_status(
        store, local_admin("alice"), "risk", "fraud-xgb", v, {"status": "staging", "comment": "ready"}
    )
    req = registry.request_status(
        store, local_admin("alice"), "risk", "fraud-xgb", v, {"status": "production", "comment": "go"}
    )
    assert req["state"] == "pending"
    with pytest.raises(Conflict, match="already pending"):
        registry.request_status(store, local_admin("carol"), "risk", "fraud-xgb", v, {"status": "production"})
    with pytest.raises(Forbidden, match="four eyes"):
        registry.decide(store, local_admin("alice"), req["id"], True, {"comment": "self"})
    assert registry.get_version(store, ADMIN, "risk", "fraud-xgb", v)["status"] == "staging"
    done = registry.decide(store, local_admin("bob"), req["id"], True, {"comment": "reviewed"})
    assert done["state"] == "approved" and done["decidedBy"] == "bob"
    with pytest.raises(Conflict, match="already approved"):
        registry.decide(store, local_admin("carol"), req["id"], False, None)
    hist = registry.get_version(store, ADMIN, "risk", "fraud-xgb", v)["history"]
    assert [(h["from"], h["to"], h["actor"]) for h in hist] == [
        (None, "development", "alice"),
        ("development", "staging", "alice"),
        ("staging", "production", "bob"),
    ]
    # A second version promoted later archives the first.
    registry.log_model(store, ADMIN, train, {"name": "fraud-xgb-2", "remote_uri": "s3://models/xgb2"})
    mv2 = registry.register_model(
        store,
        local_admin("alice"),
        "risk",
        "fraud-xgb",
        {"experiment_key": train, "experiment_model": "fraud-xgb-2"},
    )
    r2 = registry.request_status(
        store, local_admin("alice"), "risk", "fraud-xgb", mv2["version"], {"status": "production"}
    )
    rejected = registry.decide(store, local_admin("bob"), r2["id"], False, {"comment": "not yet"})
    assert rejected["state"] == "rejected"
    r3 = registry.request_status(
        store, local_admin("alice"), "risk", "fraud-xgb", mv2["version"], {"status": "production"}
    )
    registry.decide(store, local_admin("bob"), r3["id"], True, None)
    assert registry.find_versions(store, ADMIN, "risk", "fraud-xgb", status="production") == [
        registry.get_version(store, ADMIN, "risk", "fraud-xgb", mv2["version"])
    ]
    assert registry.get_version(store, ADMIN, "risk", "fraud-xgb", v)["status"] == "archived"
    registry.add_tag(store, ADMIN, "risk", "fraud-xgb", v, "champion-2026")
    assert [
        x["version"] for x in registry.find_versions(store, ADMIN, "risk", "fraud-xgb", tag="champion-2026")
    ] == [v]
    with pytest.raises(Forbidden):
        registry.register_model(
            store,
            local_admin("alice"),
            "risk",
            "fraud-xgb",
            {"experiment_key": train, "experiment_model": "fraud-xgb", "status": "production"},
        )


def test_gc_keeps_referenced_blobs(store):
    k1, k2 = _exp(store), _exp(store)
    shared = _blob(store, b"shared bytes")
    lonely = _blob(store, b"only k1")
    from tallymark.service import assets

    assets.add_asset(store, TESTER, k1, {"file_name": "a"}, iter([b"shared bytes"]))
    assets.add_asset(store, TESTER, k1, {"file_name": "b"}, iter([b"only k1"]))
    artifacts.log_artifact_version(
        store,
        local_admin("alice"),
        "risk",
        "d",
        {"artifact_type": "dataset", "files": [{"logical_path": "s", **shared}]},
    )
    orphan = _blob(store, b"never referenced")
    gc.delete_experiment(store, local_admin("tester"), k1)
    with pytest.raises(NotFound):
        experiments.get_experiment(store, TESTER, k1)
    res = gc.collect_garbage(store, local_admin("tester"), grace_seconds=0)
    assert res["removed"] == 2
    assert store.blobs.has(shared["sha256"]), "still referenced by the artifact version"
    assert not store.blobs.has(lonely["sha256"]) and not store.blobs.has(orphan["sha256"])
    artifacts.delete_artifact_version(store, ADMIN, "risk", "d", "1.0.0")
    assert gc.collect_garbage(store, local_admin("tester"), grace_seconds=0)["removed"] == 1
    assert not store.blobs.has(shared["sha256"])
    experiments.get_experiment(store, TESTER, k2)


def test_deleting_an_experiment_and_collecting_blobs_are_audited(store):
    from tallymark.service import audit, experiments

    key = uuid.uuid4().hex
    me = local_admin("tester")
    experiments.create_experiment(store, me, {"key": key, "workspace": "w", "project": "p"})
    store.blobs.put(iter([b"orphan"]), 1 << 20)
    gc.delete_experiment(store, me, key)
    assert gc.collect_garbage(store, me, dry_run=True, grace_seconds=0)["removed"] == 1
    assert gc.collect_garbage(store, me, grace_seconds=0)["removed"] == 1
    actions = [(e["action"], e["actor"]) for e in audit.entries(store)]
    assert actions[-2:] == [("experiment.delete", "tester"), ("blob.gc", "tester")]  # a dry run: none
    assert audit.verify(store).ok
