"""The store and service layer, on SQLite and on a real PostgreSQL (the db_url fixture)."""

from __future__ import annotations

import base64
import math
import struct

import numpy as np
import pytest

from tallymark.service import assets, batch, experiments, reads
from tallymark.service.caller import local_admin
from tallymark.service.errors import Conflict, Invalid, NotFound, TooLarge

from servers import new_key

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check


def _exp(store, workspace="ws", project="proj", **kw):
    key = new_key()
    experiments.create_experiment(
        store, local_admin("alice"), {"key": key, "workspace": workspace, "project": project, **kw}
    )
    return key


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_workspace_project_experiment_created_on_first_use(store):
    key = _exp(store, name="first", tags=["a", "b", "a"])
    info = experiments.get_experiment(store, TESTER, key)
    assert (info["workspace"], info["project"], info["name"], info["status"], info["user"]) == (
        "ws",
        "proj",
        "first",
        "running",
        "alice",
    )
    assert info["url"].endswith(f"/ws/proj/{key}")
    assert reads.get_tags(store, TESTER, key) == ["a", "b"]
    assert [w["name"] for w in experiments.list_workspaces(store, TESTER)] == ["ws"]
    assert experiments.list_projects(store, TESTER, "ws")[0]["experiments"] == 1
    # Same key again: idempotent; in another project: a conflict.
    again = experiments.create_experiment(
        store, local_admin("bob"), {"key": key, "workspace": "ws", "project": "proj"}
    )
    assert again["created"] is False
    with pytest.raises(Conflict):
        experiments.create_experiment(
            store, local_admin("bob"), {"key": key, "workspace": "ws", "project": "other"}
        )


def test_metric_values_round_trip_bit_exact(store):
    key = _exp(store)
    values = [1.5, math.nan, math.inf, -math.inf, -0.0, 0.0, 2**53 + 1, -(2**63), 2**63 - 1, 5, 1e-310]
    batch.apply_batch(
        store,
        TESTER,
        key,
        {
            "batch_id": "b",
            "metrics": [
                {
                    "name": "m",
                    "steps": list(range(len(values))),
                    "values": [
                        v
                        if not isinstance(v, float) or math.isfinite(v)
                        else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
                        for v in values
                    ],
                }
            ],
        },
    )
    got = reads.metric_history(store, TESTER, key, "m")
    from tallymark.jsonvalue import metric_number

    back = [metric_number(v) if isinstance(v, str) else v for v in got["values"]]
    assert len(back) == len(values)
    for a, b in zip(values, back, strict=True):
        assert type(a) is type(b), (a, b)
        if isinstance(a, float):
            assert _bits(a) == _bits(b)
        else:
            assert a == b


def test_packed_columns_and_summary(store):
    key = _exp(store)
    steps = np.arange(1000, dtype="<i8")
    vals = np.linspace(0, 1, 1000)
    vals[10] = np.nan

    def pk(a, dt):
        return {"dtype": dt, "b64": base64.b64encode(a.tobytes()).decode()}

    res = batch.apply_batch(
        store,
        TESTER,
        key,
        {
            "batch_id": "p1",
            "metrics": [
                {
                    "name": "auc",
                    "steps": pk(steps, "<i8"),
                    "values": pk(vals, "<f8"),
                    "epochs": pk(steps // 100, "<i8"),
                }
            ],
        },
    )
    assert res["points"] == 1000
    (s,) = reads.metrics_summary(store, TESTER, key)
    assert s["count"] == 1000 and s["valueCurrent"] == 1.0 and s["stepCurrent"] == 999
    assert s["valueMin"] == 0.0 and s["valueMax"] == 1.0 and s["epochCurrent"] == 9
    h = reads.metric_history(store, TESTER, key, "auc")
    assert h["steps"] == list(range(1000)) and h["values"][10] == "NaN"
    assert h["epochs"][:3] == [0, 0, 0]


def test_duplicate_and_out_of_order_steps(store):
    key = _exp(store)
    batch.apply_batch(
        store,
        TESTER,
        key,
        {"batch_id": "1", "metrics": [{"name": "m", "steps": [5, 6], "values": [0.5, 0.6]}]},
    )
    # A late point for an earlier step, and a duplicate of step 6.
    batch.apply_batch(
        store,
        TESTER,
        key,
        {"batch_id": "2", "metrics": [{"name": "m", "steps": [1, 6], "values": [0.1, 0.66]}]},
    )
    h = reads.metric_history(store, TESTER, key, "m")
    assert h["steps"] == [1, 5, 6, 6]
    assert h["values"] == [0.1, 0.5, 0.6, 0.66]  # equal steps keep arrival order
    (s,) = reads.metrics_summary(store, TESTER, key)
    assert s["valueCurrent"] == 0.66 and s["stepCurrent"] == 6 and s["count"] == 4
    batch.apply_batch(
        store, TESTER, key, {"batch_id": "3", "metrics": [{"name": "m", "steps": [2], "values": [9.0]}]}
    )
    (s,) = reads.metrics_summary(store, TESTER, key)
    assert s["valueCurrent"] == 0.66, "an out-of-order point does not become the current value"
    assert s["valueMax"] == 9.0


def test_batches_are_idempotent(store):
    key = _exp(store)
    body = {
        "batch_id": "same",
        "params": {"lr": 0.1},
        "metrics": [{"name": "m", "steps": [0], "values": [1]}],
    }
    assert batch.apply_batch(store, TESTER, key, body)["applied"] is True
    assert batch.apply_batch(store, TESTER, key, body)["duplicate"] is True
    assert reads.metrics_summary(store, TESTER, key)[0]["count"] == 1


def test_many_points_span_chunks_and_downsample(store):
    key = _exp(store)
    n = 50_000
    for i in range(5):
        batch.apply_batch(
            store,
            TESTER,
            key,
            {
                "batch_id": f"c{i}",
                "metrics": [
                    {
                        "name": "loss",
                        "steps": list(range(i * n // 5, (i + 1) * n // 5)),
                        "values": [float(x % 97) for x in range(i * n // 5, (i + 1) * n // 5)],
                    }
                ],
            },
        )
    h = reads.metric_history(store, TESTER, key, "loss")
    assert h["count"] == n and h["steps"] == list(range(n))
    d = reads.metric_history(store, TESTER, key, "loss", points=500)
    assert len(d["steps"]) == 500 and d["count"] == n
    assert d["steps"][0] == 0 and d["steps"][-1] == n - 1
    assert max(d["values"]) == 96.0, "LTTB keeps the peaks"


def test_params_others_tags_items(store):
    key = _exp(store)
    batch.apply_batch(
        store,
        TESTER,
        key,
        {
            "batch_id": "1",
            "params": {"lr": 0.1, "name": "xgb", "flag": True, "nested.a": [1, 2], "nan": {"$float": "NaN"}},
            "others": {"rows": 284807},
            "tags": ["baseline"],
            "name": "renamed",
            "items": [
                {
                    "kind": "confusion_matrix",
                    "name": "cm",
                    "data": {"matrix": [[1, 2], [3, 4]], "labels": ["N", "F"]},
                },
                {"kind": "curve", "name": "roc", "data": {"x": [0, 1], "y": [0, 1]}},
            ],
        },
    )
    batch.apply_batch(store, TESTER, key, {"batch_id": "2", "params": {"lr": 0.05}})
    p = {x["name"]: x for x in reads.parameters_summary(store, TESTER, key)}
    assert p["lr"]["valueCurrent"] == 0.05 and p["lr"]["valueMin"] == 0.05 and p["lr"]["valueMax"] == 0.1
    assert p["name"]["valueCurrent"] == "xgb" and p["flag"]["valueCurrent"] is True
    assert p["nested.a"]["valueCurrent"] == [1, 2] and math.isnan(p["nan"]["valueCurrent"])
    assert reads.others_summary(store, TESTER, key)[0]["valueCurrent"] == 284807
    assert experiments.get_experiment(store, TESTER, key)["name"] == "renamed"
    (cm,) = reads.get_items(store, TESTER, key, "confusion_matrix")
    assert cm["data"]["matrix"] == [[1, 2], [3, 4]] and cm["data"]["labels"] == ["N", "F"]
    assert reads.get_items(store, TESTER, key, "curve")[0]["data"] == {"x": [0, 1], "y": [0, 1]}


def test_a_bad_batch_writes_nothing(store):
    key = _exp(store)
    with pytest.raises(Invalid):
        batch.apply_batch(
            store,
            TESTER,
            key,
            {
                "batch_id": "bad",
                "params": {"ok": 1},
                "metrics": [{"name": "m", "steps": [1, 2], "values": [1.0]}],
            },
        )
    with pytest.raises(Invalid):
        batch.apply_batch(
            store,
            TESTER,
            key,
            {
                "batch_id": "bad2",
                "params": {"ok": 1},
                "items": [
                    {"kind": "confusion_matrix", "name": "cm", "data": {"matrix": [[1, "NaN"], [0, 1]]}}
                ],
            },
        )
    with pytest.raises(TooLarge):
        batch.apply_batch(
            store, TESTER, key, {"batch_id": "bad3", "params": {"ok": 1, "huge": "x" * (2 * 1024 * 1024)}}
        )
    assert reads.parameters_summary(store, TESTER, key) == []
    assert reads.metric_names(store, TESTER, key) == []
    # The failed batch ids were not recorded: a corrected retry with the same id applies.
    assert batch.apply_batch(store, TESTER, key, {"batch_id": "bad", "params": {"ok": 1}})["applied"]


def test_ended_and_unknown_experiments(store):
    key = _exp(store)
    experiments.end_experiment(store, TESTER, key)
    assert experiments.get_experiment(store, TESTER, key)["status"] == "ended"
    with pytest.raises(Conflict, match="has ended"):
        batch.apply_batch(store, TESTER, key, {"batch_id": "late", "params": {"a": 1}})
    with pytest.raises(NotFound):
        batch.apply_batch(store, TESTER, new_key(), {"batch_id": "x"})
    with pytest.raises(NotFound):
        reads.metric_history(store, TESTER, key, "nope")


def test_unicode_and_slash_names(store):
    key = _exp(store, workspace="équipe-風", project="détection")
    batch.apply_batch(
        store,
        TESTER,
        key,
        {
            "batch_id": "u",
            "params": {"taux/α": "ü"},
            "metrics": [{"name": "loss/train ü", "steps": [0], "values": [1.0]}],
        },
    )
    assert reads.metric_history(store, TESTER, key, "loss/train ü")["values"] == [1.0]
    assert reads.parameters_summary(store, TESTER, key)[0]["name"] == "taux/α"
    with pytest.raises(Exception, match="may not contain '/'"):
        _exp(store, workspace="a/b")


def test_assets_are_content_addressed(store, tmp_path):
    key = _exp(store)
    a1 = assets.add_asset(store, TESTER, key, {"file_name": "model.txt"}, iter([b"hello ", b"world"]))
    a2 = assets.add_asset(store, TESTER, key, {"file_name": "copy.txt"}, iter([b"hello world"]))
    assert a1["sha256"] == a2["sha256"] and a1["fileSize"] == 11
    assert store.blobs.has(a1["sha256"])
    assert [a["fileName"] for a in assets.list_assets(store, TESTER, key)] == ["model.txt", "copy.txt"]
    # Same upload id twice (a retry): recorded once.
    assets.add_asset(store, TESTER, key, {"file_name": "r.txt", "upload_id": "u1"}, iter([b"r"]))
    again = assets.add_asset(store, TESTER, key, {"file_name": "r.txt", "upload_id": "u1"}, iter([b"r"]))
    assert again["duplicate"] is True and len(assets.list_assets(store, TESTER, key)) == 3
    # A wrong announced hash keeps nothing.
    with pytest.raises(Invalid):
        assets.add_asset(store, TESTER, key, {"file_name": "x", "sha256": "0" * 64}, iter([b"other"]))
    assert not list((store.blobs.root / "tmp").iterdir())


def test_query_and_sort(store):
    keys = []
    for i, lr in enumerate([0.1, 0.15, 0.2]):
        k = _exp(store, name=f"xgb-{i}" if i else "logreg")
        batch.apply_batch(
            store,
            TESTER,
            k,
            {
                "batch_id": "1",
                "params": {"learning_rate": lr},
                "metrics": [{"name": "auc", "steps": [0], "values": [0.8 + i / 20]}],
                "tags": ["baseline"] if i == 0 else [],
            },
        )
        keys.append(k)
    q = reads.query_experiments(
        store, TESTER, "ws", "proj", "metrics.auc > 0.82 and params.learning_rate = 0.15"
    )
    assert [e["key"] for e in q["experiments"]] == [keys[1]]
    q = reads.query_experiments(store, TESTER, "ws", "proj", "name ~ 'XGB'", sort="-metrics.auc")
    assert [e["key"] for e in q["experiments"]] == [keys[2], keys[1]]
    q = reads.query_experiments(store, TESTER, "ws", "proj", "tags = 'baseline' or not metrics.auc < 0.89")
    assert {e["key"] for e in q["experiments"]} == {keys[0], keys[2]}
    q = reads.query_experiments(
        store, TESTER, "ws", "proj", None, sort="params.learning_rate", per_page=2, page=2
    )
    assert q["total"] == 3 and [e["key"] for e in q["experiments"]] == [keys[2]]
    with pytest.raises(Invalid) as info:
        reads.query_experiments(store, TESTER, "ws", "proj", "metrics.auc >> 1")
    assert info.value.detail["column"] == 14


def test_one_metric_of_many_experiments(store):
    keys = [_exp(store) for _ in range(3)]
    for i, k in enumerate(keys[:2]):
        batch.apply_batch(
            store,
            TESTER,
            k,
            {
                "batch_id": "1",
                "metrics": [
                    {"name": "auc", "steps": [2, 0, 1], "values": [0.3 + i, 0.1 + i, "NaN" if i else 0.2]}
                ],
            },
        )
    out = reads.metric_histories(store, TESTER, keys, "auc")["series"]
    assert set(out) == set(keys[:2]), "experiments without the metric are left out"
    assert out[keys[0]]["steps"] == [0, 1, 2] and out[keys[0]]["values"] == [0.1, 0.2, 0.3]
    assert out[keys[0]]["nonfinite"] is False and out[keys[1]]["values"][1] == "NaN"
    with pytest.raises(NotFound):
        reads.metric_histories(store, TESTER, [keys[0], new_key()], "auc")
    with pytest.raises(Invalid):
        reads.metric_histories(store, TESTER, ["nope"], "auc")
