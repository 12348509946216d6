# ruff: noqa: E501 - the table of bad requests reads best one request per line
"""A real endpoint process over the embedded home: every dialect gives XGBoost's own numbers, request
ids, bad requests of every kind get a 4xx that names the problem (never a 500)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from endpoint_support import FEATURES, booster_predict, data, reaping, register, train

from tallymark import API

WS = "risk"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One endpoint process for the module (deployed through Model.deploy), always killed at the end."""
    home = tmp_path_factory.mktemp("ephome")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALLYMARK_HOME", str(home))
        mp.setenv("TALLYMARK_USER", "alice")
        mp.delenv("TALLYMARK_URL", raising=False)
        booster = train()
        path = home / "model.ubj"
        booster.save_model(path)
        version = register(path)
        with reaping():
            ep = API().get_model(WS, "fraud-xgb").deploy(version)
            client = httpx.Client(base_url=ep.url, timeout=30)
            try:
                yield {"ep": ep, "booster": booster, "client": client, "version": version, "home": home}
            finally:
                client.close()
                ep.delete()


def _rows(n: int = 7) -> np.ndarray:
    return data(40, seed=3)[0][:n]


def _v(x: np.ndarray) -> list[list[Any]]:
    """Rows as JSON values of each column's type (count: integer, flag: boolean)."""
    return [[float(r[0]), float(r[1]), int(r[2]), bool(r[3])] for r in x]


def test_every_dialect_gives_the_boosters_own_predictions(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    x = _rows()
    want = booster_predict(served["booster"], x)
    rows = _v(x)
    records = [dict(zip(FEATURES, r, strict=True)) for r in rows]
    csv_body = ",".join(FEATURES) + "\n" + "\n".join(",".join(str(v).lower() for v in r) for r in rows)
    answers: dict[str, list[Any]] = {}

    def post(label: str, path: str, **kw: Any) -> dict[str, Any]:
        r = c.post(path, **kw)
        assert r.status_code == 200, (label, r.text)
        return dict(r.json())

    answers["dataframe_split"] = post(
        "split", "/invocations", json={"dataframe_split": {"columns": FEATURES, "data": rows}}
    )["predictions"]
    shuffled = FEATURES[::-1]
    answers["split, other column order"] = post(
        "order",
        "/invocations",
        json={"dataframe_split": {"columns": shuffled, "data": [r[::-1] for r in rows]}},
    )["predictions"]
    answers["dataframe_records"] = post("records", "/invocations", json={"dataframe_records": records})[
        "predictions"
    ]
    answers["instances"] = post("instances", "/invocations", json={"instances": rows})["predictions"]
    answers["inputs (columns)"] = post(
        "inputs", "/invocations", json={"inputs": {f: [r[i] for r in rows] for i, f in enumerate(FEATURES)}}
    )["predictions"]
    answers["text/csv"] = post("csv", "/invocations", content=csv_body, headers={"Content-Type": "text/csv"})[
        "predictions"
    ]
    flat = [v for r in x.tolist() for v in r]
    v2 = post(
        "v2",
        f"/v2/models/fraud-xgb/versions/{served['version']}/infer",
        json={
            "id": "my-req",
            "inputs": [{"name": "x", "shape": [len(x), 4], "datatype": "FP64", "data": flat}],
        },
    )
    assert v2["id"] == "my-req" and v2["model_version"] == served["version"]
    assert v2["outputs"][0]["name"] == "score" and v2["outputs"][0]["shape"] == [len(x)]
    answers["v2 tensor"] = v2["outputs"][0]["data"]
    per_column = [
        {"name": "amount", "shape": [len(x)], "datatype": "FP64", "data": x[:, 0].tolist()},
        {"name": "age", "shape": [len(x), 1], "datatype": "FP32", "data": [[v] for v in x[:, 1].tolist()]},
        {"name": "count", "shape": [len(x)], "datatype": "INT64", "data": [int(v) for v in x[:, 2]]},
        {"name": "flag", "shape": [len(x)], "datatype": "BOOL", "data": [bool(v) for v in x[:, 3]]},
    ]
    answers["v2 per column"] = post("v2c", "/v2/models/fraud-xgb/infer", json={"inputs": per_column})[
        "outputs"
    ][0]["data"]
    answers["/predict"] = post("predict", "/predict", json={"columns": FEATURES, "data": rows})["predictions"]
    answers["/predict records"] = post("predict-r", "/predict", json=records)["predictions"]
    answers["Endpoint.predict(numpy)"] = served["ep"].predict(x).tolist()
    import pandas as pd

    answers["Endpoint.predict(DataFrame)"] = served["ep"].predict(pd.DataFrame(x, columns=FEATURES)).tolist()
    for label, got in answers.items():
        assert np.array_equal(np.asarray(got, dtype=np.float32), want), label
        assert got == answers["dataframe_split"], label  # the very same numbers in every dialect


def test_health_version_and_v2_metadata(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    for path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready", "/version", "/v2"):
        assert c.get(path).status_code == 200, path
    meta = c.get("/v2/models/fraud-xgb").json()
    assert meta["name"] == "fraud-xgb" and meta["versions"] == [served["version"]]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("amount", "FP64"),
        ("age", "FP64"),
        ("count", "INT64"),
        ("flag", "BOOL"),
    ]
    assert meta["outputs"][0]["name"] == "score"
    assert c.get(f"/v2/models/{served['ep'].name}/versions/{served['version']}").status_code == 200
    assert c.get("/v2/models/fraud-xgb/versions/99.0.0").status_code == 404
    assert c.get("/v2/models/other-model").json()["error"].startswith("no model 'other-model'")


def test_request_ids_in_and_out(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    body = {"dataframe_split": {"columns": FEATURES, "data": _v(_rows(2))}}
    mine = c.post("/invocations", json=body, headers={"X-Request-Id": "batch-7.a_1"})
    assert mine.headers["x-request-id"] == "batch-7.a_1"
    ids = {c.post("/invocations", json=body).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    for bad in ("has space", "x" * 65, "semi;colon"):
        r = c.post("/invocations", json=body, headers={"X-Request-Id": bad})
        assert r.status_code == 400 and "X-Request-Id" in r.json()["error"]["message"]
        assert r.headers["x-request-id"] not in ("", bad)
    assert c.get("/ping", headers={"X-Request-Id": "p1"}).headers["x-request-id"] == "p1"
    scores, row_ids = served["ep"].predict(_rows(3), return_ids=True)
    assert len(scores) == 3 and row_ids[0].endswith(":0") and row_ids[2].endswith(":2")
    assert len({r.split(":")[0] for r in row_ids}) == 1


def test_missing_values_only_where_the_schema_allows_them(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    x = _rows(3)
    rows = _v(x)
    rows[1][1] = None  # age: "required": false
    r = c.post("/invocations", json={"dataframe_split": {"columns": FEATURES, "data": rows}})
    assert r.status_code == 200, r.text
    x2 = x.copy()
    x2[1, 1] = np.nan
    assert np.array_equal(
        np.asarray(r.json()["predictions"], dtype=np.float32), booster_predict(served["booster"], x2)
    )
    rows[1][0] = None  # amount is required
    r = c.post("/invocations", json={"dataframe_split": {"columns": FEATURES, "data": rows}})
    assert r.status_code == 422
    assert "column 'amount' (double), row 1: missing value" in r.json()["message"]


def _split(rows: Any, columns: Any = FEATURES) -> bytes:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


GOOD = [100.0, 40.0, 3, True]
JSON = {"Content-Type": "application/json"}
# (label, path, headers, body, status, words the message must contain)
BAD: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
    ("malformed JSON", "/invocations", JSON, b'{"dataframe_split": {', 400, "malformed JSON"),
    ("empty body", "/invocations", JSON, b"", 400, "empty"),
    ("not UTF-8", "/invocations", JSON, b'{"instances": ["\xff"]}', 400, "UTF-8"),
    ("wrong content type", "/invocations", {"Content-Type": "application/xml"}, b"<a/>", 415, "Content-Type"),
    ("no dialect key", "/invocations", JSON, b'{"rows": []}', 400, "dataframe_split"),
    ("two dialect keys", "/invocations", JSON, b'{"instances": [], "inputs": []}', 400, "exactly one"),
    ("unknown column", "/invocations", JSON, _split([GOOD], ["amount", "age", "count", "flagg"]), 422, "'flagg'"),
    ("missing column", "/invocations", JSON, _split([GOOD[:3]], FEATURES[:3]), 422, "missing column(s) 'flag'"),
    ("duplicate column", "/invocations", JSON, _split([GOOD], ["amount", "amount", "count", "flag"]), 422, "twice"),
    ("too few values", "/invocations", JSON, b'{"instances": [[1.0, 2.0, 3]]}', 422, "row 0 has 3 values"),
    ("too many values", "/invocations", JSON, b'{"instances": [[1, 2, 3, true, 5]]}', 422, "the model takes 4"),
    ("string in numeric", "/invocations", JSON, _split([["12.5", 40.0, 3, True]]), 422, "column 'amount'"),
    ("bool in numeric", "/invocations", JSON, _split([[True, 40.0, 3, True]]), 422, "got a boolean"),
    ("fraction in integer", "/invocations", JSON, _split([[1.0, 40.0, 3.5, True]]), 422, "column 'count'"),
    ("string in boolean", "/invocations", JSON, _split([[1.0, 40.0, 3, "yes"]]), 422, "column 'flag'"),
    ("NaN token", "/invocations", JSON, b'{"instances": [[NaN, 40.0, 3, true]]}', 422, "missing value"),
    ("Infinity", "/invocations", JSON, b'{"instances": [[Infinity, 40.0, 3, true]]}', 422, "not a finite number"),
    ("huge integer", "/invocations", JSON, _split([[10**400, 40.0, 3, True]]), 422, "too large"),
    ("null row", "/invocations", JSON, b'{"instances": [null]}', 422, "row 0"),
    ("no rows", "/invocations", JSON, b'{"instances": []}', 422, "no rows"),
    ("record missing key", "/invocations", JSON, b'{"dataframe_records": [{"amount": 1}]}', 422, "missing column"),
    ("record extra key", "/invocations", JSON,
     b'{"dataframe_records": [{"amount": 1, "age": 2, "count": 3, "flag": true, "x": 1}]}', 422, "unknown column 'x'"),
    ("csv bad number", "/invocations", {"Content-Type": "text/csv"},
     b"amount,age,count,flag\nabc,1,2,true\n", 422, '"abc" is not a number'),
    ("csv no rows", "/invocations", {"Content-Type": "text/csv"}, b"amount,age,count,flag\n", 400, "header row"),
    ("csv wrong header", "/invocations", {"Content-Type": "text/csv"}, b"a,b\n1,2\n", 422, "unknown column"),
    ("nested too deep", "/invocations", JSON, b"[" * 100000 + b"]" * 100000, 400, "JSON"),
    ("predict shape", "/predict", JSON, b'{"rows": 1}', 400, "columns"),
    ("predict bad type", "/predict", {"Content-Type": "image/png"}, b"x", 415, "Content-Type"),
    ("v2 no inputs", "/v2/models/fraud-xgb/infer", JSON, b"{}", 400, "inputs"),
    ("v2 BYTES", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}', 422, "BYTES"),
    ("v2 shape mismatch", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', 422, "needs 8 values"),
    ("v2 wrong width", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', 422, "3 columns"),
    ("v2 string in FP32", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, "2", 3, 4]}]}', 422, "not a FP32"),
    ("v2 unknown column", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]}', 422, "unknown column"),
    ("v2 unknown datatype", "/v2/models/fraud-xgb/infer", JSON,
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]}', 422, "datatype"),
    ("unknown route", "/score", JSON, b"{}", 404, "no route"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_that_says_what(served: dict[str, Any], case: tuple[Any, ...]) -> None:
    _, path, headers, body, status, words = case
    r = served["client"].post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    doc = r.json()
    message = doc.get("message") or (
        doc["error"] if isinstance(doc.get("error"), str) else doc["error"]["message"]
    )
    assert words in message, message
    assert r.headers["x-request-id"]


def test_body_limit_and_broken_http(served: dict[str, Any]) -> None:
    c: httpx.Client = served["client"]
    big = b'{"instances": [' + b"[1.0, 2.0, 3, true]," * 600_000 + b"[1.0, 2.0, 3, true]]}"
    assert len(big) > 10 * 1024 * 1024
    r = c.post("/invocations", content=big, headers=JSON)
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as chunks arrive
        for _ in range(12):
            yield b" " * (1 << 20)

    r = c.post("/invocations", content=chunks(), headers=JSON)
    assert r.status_code == 413
    host, port = served["ep"].url.split("//")[1].split(":")
    for raw, status in (
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET /ping HTTP/2.0\r\n\r\n", 505),
        (b"GET /ping HTTP/1.1\r\n" + b"X-A: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(raw)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
        assert got.startswith(f"HTTP/1.1 {status} ".encode()), got[:200]
    # pipelined keep-alive requests on one socket are answered in order; the endpoint still answers
    body = _split([GOOD])
    req = b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            req * 3 + b"HEAD /ping HTTP/1.1\r\n\r\n" + b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got.count(b"HTTP/1.1 200 OK") == 5 and got.endswith(b"\r\n\r\n\n")  # HEAD: no body
    assert c.get("/ping").status_code == 200


def test_endpoint_row_describes_the_process(served: dict[str, Any]) -> None:
    d = served["ep"].describe()
    assert d["status"] == "InService" and d["processAlive"] is True
    assert d["url"] == served["ep"].url and d["port"] == int(served["ep"].url.rsplit(":", 1)[1])
    assert d["config"]["sha256"] and d["model"] == {
        "workspace": WS,
        "name": "fraud-xgb",
        "version": served["version"],
        "status": "development",
        "trustedBy": None,
    }
    log = Path(served["home"]) / "endpoints" / served["ep"].name / "endpoint.log"
    assert "serving fraud-xgb" in log.read_text()


def test_predictions_are_logged_and_labels_join_by_row_id(served: dict[str, Any]) -> None:
    from endpoint_support import wait_for

    ep = served["ep"]
    x = _rows(4)
    scores, row_ids = ep.predict(x, return_ids=True)
    ep.log_ground_truth(row_ids, [1, 0, 1, 1])
    rid = row_ids[0].split(":")[0]

    def shipped() -> bool:
        t = ep.read_predictions()
        return rid in t.column("request_id").to_pylist()

    wait_for(shipped, what="the prediction log shipping the request")
    t = ep.read_predictions()
    mine = [r for r in t.to_pylist() if r["request_id"] == rid]
    assert [r["row"] for r in mine] == [0, 1, 2, 3]
    assert [r["label"] for r in mine] == [1, 0, 1, 1]
    assert np.array_equal(np.asarray([r["amount"] for r in mine]), x[:, 0])
    out = next(c for c in t.column_names if c.startswith("score") or c.startswith("prediction"))
    assert np.array_equal(np.asarray([r[out] for r in mine], dtype=np.float32), scores)


def test_endpoint_predict_sends_a_large_set_in_batches(served: dict[str, Any]) -> None:
    x = data(12_000, seed=11)[0]  # ~2.4 MB as JSON; sent in three requests
    scores, ids = served["ep"].predict(x, return_ids=True)
    assert np.array_equal(scores, booster_predict(served["booster"], x))
    assert len({i.split(":")[0] for i in ids}) == 3 and ids[5000].endswith(":0") and len(ids) == 12_000
    records = [dict(zip(FEATURES, r, strict=True)) for r in _v(x[:3])]
    records[1]["extra"] = 1.0
    with pytest.raises(Exception, match="record 1: unknown column 'extra'"):
        served["ep"].predict(records)
