"""The prediction log in one process: record → spool (real files, real threads) → the store → read
back with labels; idempotent chunks; bounded queue and spool that drop with a counter; bad chunks
and bad ground truth refused with a clear 4xx."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from predlog_support import ADMIN, FEATURES, WS, endpoint_home, make_endpoint, wait_for

from tallymark.sdk import predictions as sdk_predictions
from tallymark.sdk.transport import LocalTransport, TallymarkError
from tallymark.service import predictions
from tallymark.service.errors import Invalid
from tallymark.serving.predlog import PredictionLog


@pytest.fixture
def local(tmp_path: Path) -> LocalTransport:
    home = tmp_path / "home"
    endpoint_home(home)
    t = LocalTransport(home)
    yield t
    t.close()


def _rows(i: int, n: int = 5) -> np.ndarray:
    return np.arange(n * len(FEATURES), dtype=np.float64).reshape(n, len(FEATURES)) + i


def test_records_reach_the_store_and_read_back_with_labels(tmp_path: Path, local: LocalTransport):
    log = PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES, transport=local, seal_interval=0.05)
    for i in range(40):
        log.record(f"req-{i}", 1_000 + i, 250 + i, _rows(i), np.full(5, i / 100))
    wait_for(lambda: log.stats()["shipped"] == 200, what="200 rows shipped")
    stats = log.close()
    assert stats["dropped"] == 0 and stats["queued"] == 0 and stats["spooled"] == 200
    assert not list((tmp_path / "spool").glob("*.seg")), "acknowledged segments are deleted"

    sdk_predictions.log_ground_truth(
        WS, "fraud-ep", ["req-3", "req-3:4", "req-7:2"], [1, 0, 1], transport=local
    )
    sdk_predictions.log_ground_truth(WS, "fraud-ep", np.array(["req-7:2"]), np.array([0]), transport=local)
    t = sdk_predictions.read_predictions(WS, "fraud-ep", transport=local)
    assert t.num_rows == 200
    assert t.column_names[:4] == ["request_id", "row", "at", "latency_us"]
    assert t.column_names[4:34] == FEATURES and t.column_names[34:] == ["prediction", "label", "label_at"]
    df = t.to_pandas()
    r = df[(df.request_id == "req-9") & (df.row == 3)].iloc[0]
    assert r["at"] == 1009 and r["latency_us"] == 259 and r["prediction"] == pytest.approx(0.09)
    assert [r[f] for f in FEATURES] == list(_rows(9)[3])
    got = df.dropna(subset=["label"])
    assert dict(zip(got.request_id + ":" + got.row.astype(str), got.label, strict=True)) == {
        "req-3:0": 1.0,
        "req-3:4": 0.0,
        "req-7:2": 0.0,
    }, "bare id = row 0; last label wins"

    window = sdk_predictions.read_predictions(
        WS, "fraud-ep", 1_010, 1_020, with_labels=False, transport=local
    )
    assert sorted(set(window.column("request_id").to_pylist())) == sorted(f"req-{i}" for i in range(10, 20))
    assert "label" not in window.column_names


def test_a_chunk_shipped_twice_is_stored_once(local: LocalTransport):
    store = local.store
    from tallymark.store.schema import audit_log

    def entries() -> int:
        with store.db.read() as conn:
            return len(conn.execute(audit_log.select().where(audit_log.c.action == "prediction.log")).all())

    kw = {
        "spool_id": "s1",
        "seq": 0,
        "rows": 2,
        "first_at": 10,
        "last_at": 10,
        "data": _table_bytes(pa.table(_good())),
    }
    assert predictions.log_chunk(store, ADMIN, WS, "fraud-ep", **kw)["stored"] is True
    assert predictions.log_chunk(store, ADMIN, WS, "fraud-ep", **kw)["stored"] is False
    assert entries() == 1
    assert predictions.read_predictions(store, ADMIN, WS, "fraud-ep").num_rows == 2


def test_non_numeric_inputs_are_logged_as_their_own_columns(tmp_path: Path, local: LocalTransport):
    log = PredictionLog(
        "fraud-ep", WS, tmp_path / "spool", {}, ["city", "at", "ok"], transport=local, seal_interval=0.05
    )
    x = np.array([["Oslo", 3, True], ["Rome", 4, False]], dtype=object)
    log.record("s-1", 50, 9, x, np.array([0.25, 0.75]))
    log.record("n-1", 51, 9, np.array([[1.0, 2.0, 3.0]]), np.array([0.5]))  # numeric: a segment of its own
    wait_for(lambda: log.stats()["shipped"] == 3, what="3 rows shipped")
    log.close()
    t = sdk_predictions.read_predictions(WS, "fraud-ep", transport=local, with_labels=False)
    assert t.column_names == ["request_id", "row", "at", "latency_us", "city", "input.at", "ok", "prediction"]
    rows = {(r["request_id"], r["row"]): r for r in t.to_pylist()}
    assert (
        rows[("s-1", 1)]["city"] == "Rome"
        and rows[("s-1", 1)]["input.at"] == 4.0
        and rows[("s-1", 1)]["prediction"] == 0.75
    )
    assert rows[("n-1", 0)]["city"] == "1.0", "one column, one type: the later number joins as text"


def _table_bytes(t: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def _good(**cols) -> dict:
    base = {
        "request_id": pa.array(["r1", "r1"]),
        "row": pa.array([0, 1], pa.int32()),
        "at": pa.array([10, 10], pa.int64()),
        "latency_us": pa.array([3, 3], pa.int64()),
        "V1": pa.array([0.5, 0.7]),
    }
    base.update(cols)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not arrow at all", "not a readable Arrow IPC stream"),
        (_table_bytes(pa.table(_good()))[:-40], "not a readable Arrow IPC stream"),
        (_table_bytes(pa.table(_good(at=None))), "no 'at' column"),
        (_table_bytes(pa.table(_good(at=pa.array(["x", "y"])))), "column 'at'"),
        (_table_bytes(pa.table(_good(V1=pa.array([[1], [2]])))), "column 'V1'"),
        (_table_bytes(pa.table(_good(request_id=pa.array(["r 1", "r/2"])))), "request_id"),
        (_table_bytes(pa.table(_good(row=pa.array([0, -1], pa.int32())))), "negative"),
        (_table_bytes(pa.table(_good()), compression="zstd"), "may not be compressed"),
        (_table_bytes(pa.table(_good(V1=pa.array(["a", "b"]).dictionary_encode()))), "dictionary"),
    ],
)
def test_a_bad_chunk_is_refused_and_nothing_is_stored(local: LocalTransport, data: bytes, message: str):
    kw = {"spool_id": "s1", "seq": 0, "rows": 2, "first_at": 10, "last_at": 10, "data": data}
    with pytest.raises(Invalid, match=message):
        predictions.log_chunk(local.store, ADMIN, WS, "fraud-ep", **kw)
    with pytest.raises(Invalid, match="says 3 rows"):
        predictions.log_chunk(
            local.store, ADMIN, WS, "fraud-ep", **(kw | {"rows": 3, "data": _table_bytes(pa.table(_good()))})
        )
    assert predictions.read_predictions(local.store, ADMIN, WS, "fraud-ep").num_rows == 0


def test_a_full_spool_drops_with_a_counter_and_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    log = PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES, spool_bytes=64 << 10, ship=False)
    with caplog.at_level(logging.WARNING, "tallymark.serving.predlog"):
        for i in range(400):
            log.record(f"r{i}", i, 1, _rows(i), np.zeros(5))
        stats = log.close()
    assert stats["dropped_spool_full"] > 0 and stats["dropped"] == stats["dropped_spool_full"]
    assert stats["spooled"] + stats["dropped"] == 2000
    assert sum(f.stat().st_size for f in (tmp_path / "spool").glob("*.seg")) <= 64 << 10
    lines = [r for r in caplog.records if "dropping records (spool full)" in r.getMessage()]
    assert len(lines) == 1


def test_a_full_queue_drops_with_a_counter_and_never_raises(tmp_path: Path):
    log = PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES, queue_rows=10, ship=False)
    log.record("big", 1, 1, _rows(0, 11), np.zeros(11))  # more than the queue holds
    log.record("bad", 1, 1, object(), None)  # not arrays: counted, not raised
    log.record("wrong-width", 1, 1, np.zeros((2, 3)), np.zeros(2))
    log.record("ok", 1, 1, _rows(0, 2), np.zeros(2))
    stats = log.close()
    assert stats["dropped_queue_full"] == 11
    assert stats["dropped_invalid"] == 1 + 2
    assert stats["spooled"] == 2


def test_a_second_process_on_the_same_spool_is_refused(tmp_path: Path):
    from tallymark.serving.spool import SpoolLocked

    log = PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES, ship=False)
    try:
        with pytest.raises(SpoolLocked):
            PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES, ship=False)
    finally:
        log.close()


def test_ground_truth_errors_are_clear_4xx(client, tmp_path: Path):
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    store = open_store(Settings(home=tmp_path / "srv"))
    make_endpoint(store)
    store.close()
    url = f"/api/v1/workspaces/{WS}/endpoints/fraud-ep/ground-truth"
    ok = client.post(url, json={"ids": ["a", "b:2"], "labels": [1, "yes"]})
    assert ok.status_code == 200 and ok.json() == {"labeled": 2}
    for body, status, text in [
        ({"ids": ["a", "b"], "labels": [1]}, 422, "labels has 1"),
        ({"ids": ["a b"], "labels": [1]}, 422, "not a row id"),
        ({"ids": ["a:x"], "labels": [1]}, 422, "not a row id"),
        ({"ids": ["a"], "labels": [{"x": 1}]}, 422, "labels[0]"),
        ({"ids": ["a"] * 100_001, "labels": [1] * 100_001}, 413, "100,000"),
    ]:
        r = client.post(url, json=body)
        assert r.status_code == status, r.text
        assert text in r.json()["error"]["message"]
    missing = client.post(
        f"/api/v1/workspaces/{WS}/endpoints/nope/ground-truth", json={"ids": ["a"], "labels": [1]}
    )
    assert missing.status_code == 404
    page = client.get(f"/api/v1/workspaces/{WS}/endpoints/fraud-ep/predictions")
    assert page.status_code == 200 and page.json() == {"predictions": [], "total": 0, "next_offset": None}
    arrow = client.get(
        f"/api/v1/workspaces/{WS}/endpoints/fraud-ep/predictions",
        headers={"Accept": "application/vnd.apache.arrow.stream"},
    )
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert pa.ipc.open_stream(arrow.content).read_all().column_names[:4] == [
        "request_id",
        "row",
        "at",
        "latency_us",
    ]


def test_sdk_ground_truth_errors(local: LocalTransport):
    with pytest.raises(ValueError, match="2 ids but 3 labels"):
        sdk_predictions.log_ground_truth(WS, "fraud-ep", ["a", "b"], [1, 2, 3], transport=local)
    with pytest.raises(TallymarkError, match="not a row id") as err:
        sdk_predictions.log_ground_truth(WS, "fraud-ep", ["a:b:c"], [1], transport=local)
    assert err.value.status == 422


def test_spool_bytes_zero_turns_the_log_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TALLYMARK_PREDICTION_SPOOL_BYTES", "0")
    log = PredictionLog("fraud-ep", WS, tmp_path / "spool", {}, FEATURES)
    log.record("a", 1, 1, _rows(0), np.zeros(5))
    assert log.close() == log.stats() and log.stats()["spooled"] == 0 and log.stats()["dropped"] == 0
    assert not (tmp_path / "spool").exists()
