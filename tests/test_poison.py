"""No poison pills: a value the store cannot hold is refused when it is logged (one warning naming it,
the rest kept), and a batch carrying one is answered 4xx as a whole, never 500, never half-written.

Each value is logged mid-run, embedded and against a real server process, and every point logged
after it is counted.
"""

from __future__ import annotations

import math

import pytest

import tallymark
from tallymark import jsonvalue
from tallymark.service.caller import local_admin
from tallymark.storable import MAX_VALUE_DEPTH, name_problem, value_problem

from servers import ServerProcess, new_key

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check


def _quiet(**kw):
    return {
        "log_code": False,
        "log_env": False,
        "log_git": False,
        "log_system_metrics": False,
        "capture_stdout": False,
        **kw,
    }


def _nested(depth: int, leaf=1, kind=list):
    v = leaf
    for _ in range(depth):
        v = [v] if kind is list else {"a": v}
    return v


POISON = {
    "huge int": 10**400,
    "huge negative int": -(10**400),
    "int of 5000 digits": 10**5000,
    "nested 500 deep": _nested(500),
    "nested 100k deep": _nested(100_000),
    "dict nested 100k deep": _nested(100_000, kind=dict),
    "nested one past the limit": _nested(MAX_VALUE_DEPTH + 1),
    "lone surrogate": "bad \ud800 text",
    "lone surrogate key": {"\udfff": 1},
    "huge int deep inside": {"a": [1, 2, {"b": 10**400}]},
    "two megabytes": "x" * (2 * 1024 * 1024),
}


def test_the_rule():
    for what, value in POISON.items():
        if what != "two megabytes":  # sizes are checked on the encoded text, by the caller
            assert value_problem(value) is not None, what
    for fine in (
        None,
        True,
        2**63,
        2**1000,
        -(2**1000),
        float("nan"),
        float("-inf"),
        "é😀",
        _nested(MAX_VALUE_DEPTH),
        {"a": (1, 2), "b": {3, 4}},
    ):
        assert value_problem(fine) is None, fine
    assert "too large" in value_problem(10**400) and "48" in value_problem(_nested(49))
    for bad in ("1.0.0\n", "prod\n", "a\x00b", "a\x85b", "a\u2028b", "\ud800", "", "  ", "x" * 501):
        assert name_problem(bad) is not None, repr(bad)
    assert name_problem("learning rate\tx") is None and name_problem("é/ü.😀") is None


def test_depth_scan_never_recurses():
    assert jsonvalue.nesting_depth("[" * 100_000) == 100_000
    assert jsonvalue.nesting_depth(b'{"a": "[[[[\\"{{", "b": [[1]]}') == 3
    assert jsonvalue.nesting_depth(b'"\\\\" [ ]') == 1
    assert jsonvalue.nesting_depth(b"12") == 0
    with pytest.raises(jsonvalue.TooDeep, match="100,000 levels deep; the limit is 64"):
        jsonvalue.parse("[" * 100_000 + "]" * 100_000, 64)
    assert jsonvalue.parse("[" * 64 + "]" * 64, 64) == _nested(63, leaf=[])


def _run_with_poison(name: str, value, capfd) -> str:
    """Log 50 points, the poison value (as parameter, other, metric and tag where it fits), 50 more."""
    exp = tallymark.Experiment(project_name="p", workspace="w", **_quiet())
    exp.log_parameter("before", 1)
    for step in range(50):
        exp.log_metric("loss", step / 100, step=step)
    exp.log_parameter("p", value)
    exp.log_parameters({"kept": 2, "also_poison": value})
    exp.log_other("o", value)
    exp.log_table("table.json", [["a"], [value]])
    exp.flush()
    for step in range(50, 100):
        exp.log_metric("loss", step / 100, step=step)
    exp.log_parameter("after", 3)
    # The deepest value the SDK lets through, NaN (a {"$float"} object on the wire) at the bottom:
    # the server takes it, so the body limit (64) leaves room for the batch around it.
    exp.log_parameter("edge", _nested(MAX_VALUE_DEPTH, leaf=float("nan")))
    exp.log_table("deep.json", [["a"], [_nested(MAX_VALUE_DEPTH - 3, leaf=float("inf"))]])  # data, rows, row
    exp.end()
    err = capfd.readouterr().err
    # (a nested dict is flattened to a.b names: it is refused by the name it grows into)
    assert "parameter 'p" in err and "other 'o' was not logged" in err, err[-2000:]
    table_too = name != "two megabytes"  # a table may hold 16 MiB
    assert err.count("parameter 'p") == 1 and err.count("was not logged") == 3 + table_too, err
    e = tallymark.API().get_experiment_by_key(exp.get_key())
    points = e.get_metrics("loss")
    assert [p["step"] for p in points] == list(range(100)), name
    params = {p["name"]: p["valueCurrent"] for p in e.get_parameters_summary()}
    edge = params.pop("edge")
    for _ in range(MAX_VALUE_DEPTH):
        (edge,) = edge
    assert math.isnan(edge)
    assert params == {"before": 1, "kept": 2, "after": 3}, name
    assert [t["name"] for t in e.get_tables()].count("deep.json") == 1
    assert e.get_others_summary() == []
    return exp.get_key()


def test_embedded_poison_values_are_warned_about_and_the_run_goes_on(home, capfd):
    for name, value in POISON.items():
        _run_with_poison(name, value, capfd)


def test_poison_metrics_names_and_steps_are_warned_about(home, capfd):
    exp = tallymark.Experiment(project_name="p", workspace="w", **_quiet())
    for step in range(100):
        exp.log_metric("m", step, step=step)
        if step == 50:
            exp.log_metric("m", 10**400, step=step)
            exp.log_metric("m", 2**64, step=step)
            exp.log_metric("m", 1.0, step=2**70)
            exp.log_metric("bad\nname", 1.0)
            exp.log_parameter("bad\n", 1)
            exp.add_tags(["ok", "prod\n"])
            exp.set_name("name\x1b]52;c;x\x07")
            exp.log_curve("roc", [0, 1], [0])  # the server would refuse the whole batch for it
            exp.log_confusion_matrix(matrix=[[1, 2]])
    exp.end()
    err = capfd.readouterr().err
    for fragment in (
        "64 bits",
        "'bad\\nname'",
        "'prod\\n'",
        "'bad\\n'",
        "control character",
        "curve 'roc' was not logged: curve 'roc': x has 2 values but y has 1",
        "must be square",
    ):
        assert fragment in err, (fragment, err)
    e = tallymark.API().get_experiment_by_key(exp.get_key())
    assert [p["metricValue"] for p in e.get_metrics("m")] == list(range(100))
    assert e.get_tags() == ["ok"] and e.get_parameters_summary() == [] and e.get_curves() == []


@pytest.mark.slow
def test_poison_values_against_a_real_server(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("TALLYMARK_HOME", raising=False)
    monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "client"))
    with ServerProcess(tmp_path / "srv") as srv:
        monkeypatch.setenv("TALLYMARK_URL", srv.url)
        for name, value in POISON.items():
            _run_with_poison(name, value, capfd)
        log = srv.log.read_text()
    assert " 500 " not in log and "Traceback" not in log, log[-3000:]
    assert not list((tmp_path / "client").rglob("*.jsonl")), "nothing may be left in a journal"


# ----- the server's side: a batch it can never accept is a 4xx, and nothing of it is written -----


def _body_with(value) -> str:
    """A JSON batch body carrying ``value`` as a parameter, next to good points and a good parameter."""
    return (
        '{"batch_id": "b1", "params": {"good": 1, "p": '
        + value
        + '}, "metrics": [{"name": "loss", "steps": [0, 1], "values": [0.5, 0.25]}]}'
    )


@pytest.mark.parametrize(
    "value, status, fragment",
    [
        ("1" + "0" * 400, 422, "too large"),
        ("-1" + "0" * 400, 422, "too large"),
        ("[" * 49 + "1" + "]" * 49, 422, "nests more than 48"),
        ("[" * 500 + "1" + "]" * 500, 400, "the limit is 64"),
        ("[" * 100_000 + "1" + "]" * 100_000, 400, "the limit is 64"),
        ('"\\ud800"', 422, "not valid Unicode"),
        ('{"\\udfff": 1}', 422, "not valid Unicode"),
    ],
    ids=["huge", "huge-negative", "deep-49", "deep-500", "deep-100k", "surrogate", "surrogate-key"],
)
def test_json_batch_with_a_poison_value_is_4xx_and_writes_nothing(client, value, status, fragment):
    key = new_key()
    assert (
        client.post("/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p"}).status_code
        == 201
    )
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=_body_with(value),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]["message"]
    assert client.get(f"/api/v1/experiments/{key}/params").json()["params"] == []
    assert client.get(f"/api/v1/experiments/{key}/metrics").json()["metrics"] == []
    # The same batch id is still free: the refused batch left no trace.
    good = _body_with("2")
    r = client.post(
        f"/api/v1/experiments/{key}/batch", content=good, headers={"content-type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["applied"] is True, r.text


@pytest.mark.parametrize(
    "header_value, status, fragment",
    [
        (b"1" + b"0" * 400, 422, "too large"),
        (b"[" * 500 + b"1" + b"]" * 500, 400, "the limit is 64"),
        (b"[" * 100_000 + b"1" + b"]" * 100_000, 400, "the limit is 64"),
    ],
    ids=["huge", "deep-500", "deep-100k"],
)
def test_binary_batch_with_a_poison_value_is_4xx_and_writes_nothing(client, header_value, status, fragment):
    import struct

    from tallymark.sdk.wire import Batch, MetricBuffer

    key = new_key()
    assert (
        client.post("/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p"}).status_code
        == 201
    )
    buf = MetricBuffer("loss", int_aware=False)
    for i in range(3):
        buf.s.append(i)
        buf.v.append(i / 10)
        buf.e.append(-(2**63))
        buf.t.append(1_700_000_000.0 + i)
    good = Batch(batch_id="bin1", params={"p": 12345}, metrics=[buf.take(10)]).binary()
    hlen = struct.unpack_from("<I", good, 4)[0]
    head = good[8 : 8 + hlen].replace(b"12345", header_value)
    assert head != good[8 : 8 + hlen]
    bad = b"TMB1" + struct.pack("<I", len(head)) + head + good[8 + hlen :]
    url = f"/api/v1/experiments/{key}/batch/binary"
    r = client.post(url, content=bad, headers={"content-type": "application/x-tallymark-batch"})
    assert r.status_code == status and fragment in r.json()["error"]["message"], r.text
    assert client.get(f"/api/v1/experiments/{key}/metrics").json()["metrics"] == []
    r = client.post(url, content=good, headers={"content-type": "application/x-tallymark-batch"})
    assert r.status_code == 200 and r.json()["points"] == 3, r.text


def test_the_service_refuses_poison_on_every_store(store):
    """The same rule on SQLite and PostgreSQL; text with NUL is kept (PostgreSQL text cannot hold NUL:
    only the query copy drops it)."""
    from tallymark.service import batch, experiments, reads
    from tallymark.service.errors import Invalid

    key = new_key()
    experiments.create_experiment(store, local_admin("alice"), {"key": key, "workspace": "w", "project": "p"})
    for value in (10**400, _nested(MAX_VALUE_DEPTH + 1), "\ud800"):
        with pytest.raises(Invalid, match="parameter 'p' cannot be stored"):
            batch.apply_batch(store, TESTER, key, {"batch_id": "b1", "params": {"ok": 1, "p": value}})
    assert reads.parameters_summary(store, TESTER, key) == []
    batch.apply_batch(store, TESTER, key, {"batch_id": "b1", "params": {"p": "a\x00b", "big": 2**1000}})
    params = {p["name"]: p["valueCurrent"] for p in reads.parameters_summary(store, TESTER, key)}
    assert params == {"p": "a\x00b", "big": 2**1000}
