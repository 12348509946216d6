"""The REST API through an in-process client: shapes, and bad input answered 4xx with one error
shape, never a 500, never a half write."""

from __future__ import annotations

import gzip
import json

import pytest

from servers import new_key


def _create(client, **kw):
    key = new_key()
    r = client.post("/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p", **kw})
    assert r.status_code == 201, r.text
    return key


def _assert_error(r, status, fragment=""):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}
    assert fragment.lower() in body["error"]["message"].lower(), body["error"]["message"]
    return body["error"]


def test_health_and_openapi(client):
    assert client.get("/api/v1/health").json()["status"] == "ok"
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/experiments/{key}/batch" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_round_trip_with_non_finite_values(client):
    key = _create(client, name="n", tags=["t"])
    body = {
        "batch_id": "b1",
        "params": {"lr": 0.15, "bad": {"$float": "-Infinity"}},
        "metrics": [{"name": "auc", "steps": [0, 1], "values": [0.5, "NaN"], "epochs": [0, None]}],
    }
    assert client.post(f"/api/v1/experiments/{key}/batch", json=body).json()["applied"] is True
    m = client.get(f"/api/v1/experiments/{key}/metric", params={"name": "auc"}).json()
    assert m["values"] == [0.5, "NaN"] and m["epochs"] == [0, None]
    params = {
        p["name"]: p["valueCurrent"] for p in client.get(f"/api/v1/experiments/{key}/params").json()["params"]
    }
    assert params == {"lr": 0.15, "bad": {"$float": "-Infinity"}}
    summary = client.get(f"/api/v1/experiments/{key}/metrics").json()["metrics"][0]
    assert summary["valueCurrent"] == {"$float": "NaN"} and summary["valueMax"] == 0.5


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"batch_id": "1", "params": "not a dict"}, "params"),
        ({"batch_id": "1", "metrics": [{"name": "m", "steps": ["a"], "values": [1]}]}, "steps"),
        ({"batch_id": "1", "metrics": [{"name": "m", "steps": [1], "values": ["abc"]}]}, "not a number"),
        (
            {"batch_id": "1", "metrics": [{"name": "m", "steps": [1, 2], "values": [1]}]},
            "1 values but 2 steps",
        ),
        ({"batch_id": "1", "metrics": [{"name": "m", "steps": [2**64], "values": [1]}]}, "steps"),
        ({"batch_id": "1", "metrics": [{"name": "m", "steps": [1], "values": [2**70]}]}, "64 bits"),
        ({"batch_id": "1", "metrics": [{"name": "", "steps": [1], "values": [1]}]}, "name"),
        ({"batch_id": "1", "metrics": [{"name": "a\x00b", "steps": [1], "values": [1]}]}, "control"),
        (
            {
                "batch_id": "1",
                "items": [
                    {"kind": "confusion_matrix", "name": "cm", "data": {"matrix": [[1, "NaN"], [1, 1]]}}
                ],
            },
            "NaN",
        ),
        (
            {
                "batch_id": "1",
                "items": [
                    {"kind": "confusion_matrix", "name": "cm", "data": {"matrix": [[1, 2, 3], [1, 1]]}}
                ],
            },
            "square",
        ),
        (
            {"batch_id": "1", "items": [{"kind": "curve", "name": "roc", "data": {"x": [1, 2], "y": [1]}}]},
            "x has 2",
        ),
        ({"batch_id": "1", "items": [{"kind": "nonsense", "name": "x", "data": {}}]}, "kind"),
        ({"batch_id": "has spaces"}, "batch_id"),
        ({"batch_id": "1", "unknown_field": 1}, "unknown_field"),
        (
            {
                "batch_id": "1",
                "metrics": [{"name": "m", "steps": {"dtype": "<i8", "b64": "!!"}, "values": [1]}],
            },
            "base64",
        ),
    ],
)
def test_bad_batches_are_422_and_write_nothing(client, body, fragment):
    key = _create(client)
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        json={**body, "params": body.get("params", {"keep": 1})}
        if isinstance(body.get("params", {}), dict)
        else body,
    )
    _assert_error(r, 422, fragment)
    assert client.get(f"/api/v1/experiments/{key}/params").json()["params"] == []
    assert client.get(f"/api/v1/experiments/{key}/metrics").json()["metrics"] == []


def test_ten_megabyte_value_is_refused(client):
    key = _create(client)
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        json={"batch_id": "1", "params": {"big": "x" * (10 * 1024 * 1024)}},
    )
    # 10 MB exceeds this test server's 8 MiB body limit: 413 before parsing.
    _assert_error(r, 413, "limit")
    r = client.post(
        f"/api/v1/experiments/{key}/batch", json={"batch_id": "1", "others": {"big": "x" * 2_000_000}}
    )
    _assert_error(r, 413, "limit is 1,048,576 bytes")
    assert client.get(f"/api/v1/experiments/{key}/others").json()["others"] == []


def test_invalid_json_and_wrong_content(client):
    key = _create(client)
    r = client.post(
        f"/api/v1/experiments/{key}/batch", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_error(r, 422, "json")
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=b"x",
        headers={"content-encoding": "br", "content-type": "application/json"},
    )
    _assert_error(r, 415, "not supported")


def test_gzip_bodies_and_bombs(client):
    key = _create(client)
    body = json.dumps({"batch_id": "gz", "params": {"a": 1}}).encode()
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=gzip.compress(body),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    bomb = gzip.compress(b'{"batch_id": "x", "params": {"a": "' + b"A" * (64 * 1024 * 1024) + b'"}}')
    assert len(bomb) < 200_000
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    _assert_error(r, 413, "after decompression")
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=b"\x1f\x8bgarbage",
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    _assert_error(r, 400, "gzip")


def test_oversized_body_by_content_length(client):
    key = _create(client)
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        content=b" " * (9 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    _assert_error(r, 413, "limit")


def test_unknown_and_ended_experiments(client):
    unknown = new_key()
    _assert_error(client.get(f"/api/v1/experiments/{unknown}"), 404, "no experiment")
    _assert_error(client.post(f"/api/v1/experiments/{unknown}/batch", json={"batch_id": "1"}), 404)
    _assert_error(client.get("/api/v1/experiments/NOT-A-KEY"), 422, "key")
    key = _create(client)
    assert client.post(f"/api/v1/experiments/{key}/end").json()["status"] == "ended"
    _assert_error(
        client.post(f"/api/v1/experiments/{key}/batch", json={"batch_id": "2", "params": {"a": 1}}),
        409,
        "has ended",
    )
    _assert_error(client.get("/api/v1/no/such/route"), 404, "no such API route")
    _assert_error(client.delete("/api/v1/health"), 405)


def test_unicode_and_slash_in_names(client):
    key = _create(client, name="modèle/α")
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        json={"batch_id": "u", "metrics": [{"name": "val/auc ✓", "steps": [0], "values": [0.9]}]},
    )
    assert r.status_code == 200
    m = client.get(f"/api/v1/experiments/{key}/metric", params={"name": "val/auc ✓"}).json()
    assert m["values"] == [0.9]
    r = client.post("/api/v1/experiments", json={"key": new_key(), "workspace": "a/b", "project": "p"})
    _assert_error(r, 422, "may not contain '/'")
    r = client.post("/api/v1/experiments", json={"key": "ABC", "workspace": "w", "project": "p"})
    _assert_error(r, 422, "experiment key")


def test_bad_queries_point_at_the_column(client):
    _create(client)
    r = client.get("/api/v1/experiments", params={"workspace": "w", "project": "p", "q": "metrics.auc > "})
    err = _assert_error(r, 422, "column")
    assert err["detail"]["column"] == 15
    r = client.get("/api/v1/experiments", params={"workspace": "w", "project": "p", "q": "bogus.x = 1"})
    _assert_error(r, 422)
    r = client.get("/api/v1/experiments", params={"workspace": "w", "project": "nope"})
    _assert_error(r, 404, "no project")
    r = client.get("/api/v1/experiments", params={"workspace": "w", "per_page": 100000})
    _assert_error(r, 422, "per_page")


def test_assets_upload_download_and_limits(client):
    key = _create(client)
    meta = json.dumps({"file_name": "evil.html", "metadata": {"k": "v"}})
    r = client.post(
        f"/api/v1/experiments/{key}/assets",
        params={"meta": meta},
        content=b"<script>x</script>",
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    aid = r.json()["assetId"]
    got = client.get(f"/api/v1/experiments/{key}/assets/{aid}/content")
    assert got.content == b"<script>x</script>"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["x-content-type-options"] == "nosniff"
    r = client.post(
        f"/api/v1/experiments/{key}/assets",
        params={"meta": "{bad"},
        content=b"x",
        headers={"content-type": "application/octet-stream"},
    )
    _assert_error(r, 422, "meta")
    r = client.post(
        f"/api/v1/experiments/{key}/assets",
        params={"meta": json.dumps({"file_name": "big"})},
        content=b"x" * (17 * 1024 * 1024),
        headers={"content-type": "application/octet-stream"},
    )
    _assert_error(r, 413)
    assert len(client.get(f"/api/v1/experiments/{key}/assets").json()["assets"]) == 1
    _assert_error(client.get(f"/api/v1/experiments/{key}/assets/999/content"), 404)


def test_no_route_answers_500_to_garbage(client):
    """Every route, fed junk, answers a 4xx in the one error shape."""
    key = _create(client)
    spec = client.get("/api/v1/openapi.json").json()
    for path, ops in spec["paths"].items():
        url = path.replace("{key}", key).replace("{workspace}", "w").replace("{asset_id}", "abc")
        for method in ops:
            r = client.request(
                method.upper(),
                url,
                content=b"\xff\xfe junk",
                params={"name": "\x00"},
                headers={"content-type": "application/json"},
            )
            assert r.status_code < 500, (method, path, r.status_code, r.text)


def test_binary_batches(client):
    import struct

    from tallymark.sdk.wire import Batch, MetricBuffer

    key = _create(client)
    buf = MetricBuffer("loss", int_aware=True)
    for i, v in enumerate([0.5, float("nan"), 2**60 + 3]):
        buf.s.append(i)
        buf.v.append(v)
        buf.e.append(-(2**63))
        buf.iv.append(v if isinstance(v, int) else 0)
        buf.im.append(isinstance(v, int))
        buf.t.append(1_700_000_000.0 + i)
    batch = Batch(batch_id="bin1", params={"lr": 0.1}, metrics=[buf.take(10)])
    url = f"/api/v1/experiments/{key}/batch/binary"
    r = client.post(url, content=batch.binary(), headers={"content-type": "application/x-tallymark-batch"})
    assert r.status_code == 200 and r.json()["points"] == 3, r.text
    m = client.get(f"/api/v1/experiments/{key}/metric", params={"name": "loss"}).json()
    assert m["values"] == [0.5, "NaN", 2**60 + 3] and m["timestamps"][0] == 1_700_000_000_000
    good = batch.binary()
    hlen = struct.unpack_from("<I", good, 4)[0]
    for bad, fragment in [
        (b"nope", "TMB1"),
        (good[:-5], "truncated"),
        (good + b"xx", "unexpected bytes"),
        (b"TMB1" + struct.pack("<I", 10**6) + b"{}", "truncated"),
        (b"TMB1" + struct.pack("<I", 2) + b"[]", "object"),
        (good[:8] + good[8 : 8 + hlen].replace(b'"count":3', b'"count":0') + good[8 + hlen :], "positive"),
    ]:
        r = client.post(url, content=bad, headers={"content-type": "application/x-tallymark-batch"})
        _assert_error(r, 422, fragment)
    assert len(client.get(f"/api/v1/experiments/{key}/metric", params={"name": "loss"}).json()["values"]) == 3
