"""Hostile input never gets a 500: bodies nested past 64 levels (on every REST and Comet route),
integers past int64 in paths and queries, and names, keys, versions and aliases with control
characters (a trailing newline above all: ``$`` in a Python regex lets one through)."""

from __future__ import annotations

import gzip
import re

import pytest

from servers import new_key

DEEP = {"1k": "[" * 1000 + "]" * 1000, "100k": '{"a":' * 100_000 + "1" + "}" * 100_000}


def _create(client, **kw):
    key = new_key()
    r = client.post("/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p", **kw})
    assert r.status_code == 201, r.text
    return key


def _dispatch(client):
    """The app's dispatcher, under its middleware layers."""
    app = client.app
    while not hasattr(app, "comet"):
        app = app.app
    return app


def _walk(routes, prefix=""):
    for route in routes:
        if hasattr(route, "path"):
            yield prefix + route.path, getattr(route, "methods", None) or ()
        elif hasattr(route, "original_router"):  # an included router (newer FastAPI)
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)


def _routes(app):
    """(method, path) of every body-taking route of a FastAPI app, path parameters filled in."""
    key = new_key()
    for path, methods in _walk(app.routes):
        for method in sorted(methods):
            if method in ("POST", "PUT", "PATCH"):
                yield method, re.sub(r"\{[^}]+\}", "x", path.replace("{key}", key))


@pytest.mark.parametrize("depth", DEEP)
def test_deep_bodies_are_400_on_every_rest_route(client, depth):
    key = _create(client)
    api = _dispatch(client).api
    seen = 0
    for method, path in _routes(api):
        path = path.replace("/experiments/x", f"/experiments/{key}")
        r = client.request(method, path, content=DEEP[depth], headers={"content-type": "application/json"})
        assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
        if r.status_code == 400 and "levels deep; the limit is 64" in r.json()["error"]["message"]:
            seen += 1
    assert seen >= 10, seen  # every route with a JSON body said why
    r = client.post(f"/api/v1/experiments/{key}/batch", content=DEEP[depth])  # no content type at all
    assert r.status_code == 415 and "no Content-Type" in r.json()["error"]["message"], r.text  # never parsed
    r = client.post(  # measured after decompression
        f"/api/v1/experiments/{key}/batch",
        content=gzip.compress(DEEP[depth].encode()),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 400 and "the limit is 64" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("depth", DEEP)
def test_deep_bodies_never_500_on_comet_routes(client, depth):
    comet = _dispatch(client).comet.get()
    seen = 0
    for method, path in _routes(comet):
        for body_type in ("application/json;charset=utf-8", None):
            headers = {"content-type": body_type} if body_type else {}
            headers["authorization"] = "any-key"  # comet_ml always sends one (docs/security.md)
            r = client.request(method, path, content=DEEP[depth], headers=headers)
            assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
            seen += "the limit is 64" in r.text
    assert seen >= 20, seen


def test_deep_json_inside_comet_strings_and_ids(client):
    """JSON carried inside a JSON string (Comet's metadata) or an id is measured before parsing too."""
    from tallymark.server.compat.comet import translate as tr

    with pytest.raises(tr.Refused, match="the limit is 64"):
        tr.metadata_in("[" * 100_000)
    with pytest.raises(tr.Refused):
        tr.parse_id("af", "af-" + __import__("base64").urlsafe_b64encode(b"[" * 100_000).decode(), 4)
    with pytest.raises(tr.Refused, match="64 bits"):
        tr.int_or_none(2**64, "step")
    with pytest.raises(tr.Refused, match="not an integer"):
        tr.int_or_none("1" * 5000, "step")


def test_binary_batch_header_nested_too_deep(client):
    import struct

    key = _create(client)
    head = b'{"batch_id":"b","params":{"p":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    body = b"TMB1" + struct.pack("<I", len(head)) + head
    r = client.post(
        f"/api/v1/experiments/{key}/batch/binary",
        content=body,
        headers={"content-type": "application/x-tallymark-batch"},
    )
    assert r.status_code == 400 and "binary batch header nests 100,002 levels" in r.text, r.text


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/experiments?workspace=w&page=" + "9" * 30),
        ("GET", "/api/v1/experiments?workspace=w&page=9223372036854775807"),
        ("GET", "/api/v1/experiments/KEY/assets/18446744073709551616/content"),
        ("GET", "/api/v1/experiments/KEY/assets/-9223372036854775809/content"),
        ("GET", "/api/v1/experiments/KEY/assets/2147483648/content"),
        ("POST", "/api/v1/requests/2147483648/approve"),
        ("POST", "/api/v1/requests/18446744073709551616/approve"),
        ("POST", "/api/v1/requests/99999999999999999999999999/reject"),
        ("GET", "/api/v1/experiments/KEY/metric?name=m&points=" + "9" * 30),
    ],
)
def test_integers_beyond_int64_and_ids_beyond_their_column_are_422(client, method, path):
    key = _create(client)
    r = client.request(method, path.replace("KEY", key))
    assert r.status_code == 422, r.text
    assert set(r.json()["error"]) == {"code", "message", "detail"}


def test_steps_and_sizes_beyond_int64_in_bodies_are_422(client):
    key = _create(client)
    for series in (
        {"name": "m", "steps": [2**63], "values": [1.0]},
        {"name": "m", "steps": [0], "values": [1.0], "epochs": [-(2**63) - 1]},
        {"name": "m", "steps": [0], "values": [1.0], "timestamps": [10**30]},
    ):
        r = client.post(f"/api/v1/experiments/{key}/batch", json={"batch_id": "b", "metrics": [series]})
        assert r.status_code == 422, r.text
    r = client.post(
        f"/api/v1/experiments/{key}/batch",
        json={"batch_id": "b", "items": [{"kind": "curve", "name": "c", "step": 2**64, "data": {}}]},
    )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("nl", ["\n", "\r", "\x00", "\x1b", "\x85", "\u2028"])
def test_names_keys_versions_and_aliases_refuse_control_characters(client, nl):
    key = new_key()
    for body in (
        {"key": key + nl, "workspace": "w", "project": "p"},
        {"key": key, "workspace": "w" + nl, "project": "p"},
        {"key": key, "workspace": "w", "project": "p", "name": "run" + nl},
        {"key": key, "workspace": "w", "project": "p", "tags": ["t" + nl]},
    ):
        r = client.post("/api/v1/experiments", json=body)
        assert r.status_code == 422, (body, r.text)
    key = _create(client)
    r = client.post(f"/api/v1/experiments/{key}/batch", json={"batch_id": "b", "params": {"p" + nl: 1}})
    assert r.status_code == 422, r.text
    url = "/api/v1/workspaces/w/artifacts/data/versions"
    for body in (
        {"artifact_type": "dataset", "version": "1.0.0" + nl},
        {"artifact_type": "dataset", "aliases": ["prod" + nl]},
        {"artifact_type": "dataset" + nl},
        {"artifact_type": "dataset", "experiment_key": key + nl},
    ):
        r = client.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.get("/api/v1/workspaces/w/artifacts").json()["artifacts"] == []
    r = client.post(
        "/api/v1/workspaces/w/models/m/versions",
        json={"experiment_key": key, "experiment_model": "m", "version": "1.0.0" + nl},
    )
    assert r.status_code == 422, r.text


def test_python_regexes_are_anchored_at_the_very_end():
    from tallymark.service.models import ALIAS_RE, BATCH_ID_RE, KEY_RE, SEMVER_RE

    for regex, good in ((KEY_RE, "a" * 32), (SEMVER_RE, "1.0.0"), (ALIAS_RE, "prod"), (BATCH_ID_RE, "b-1")):
        assert regex.match(good) and not regex.match(good + "\n"), regex.pattern


@pytest.mark.parametrize("asset_id", ["18446744073709551616", "2147483648", "9" * 40, "9" * 5000, "²", "-1"])
def test_comet_asset_ids_beyond_int64_are_404(client, asset_id):
    key = _create(client)
    r = client.get(
        "/api/rest/v2/experiment/asset/get-asset", params={"experimentKey": key, "assetId": asset_id}
    )
    assert r.status_code == 404, r.text


def test_deep_json_in_the_asset_meta_query_is_422(client):
    key = _create(client)
    meta = '{"file_name": "a.txt", "metadata": ' + "[" * 3000 + "]" * 3000 + "}"
    r = client.post(
        f"/api/v1/experiments/{key}/assets",
        params={"meta": meta},
        content=b"abc",
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 422 and "meta nests 3,001 levels deep; the limit is 64" in r.text, r.text
    assert client.get(f"/api/v1/experiments/{key}/assets").json()["assets"] == []
