"""Cross-site requests and DNS rebinding (server/crosssite.py, docs/security.md).

First every refused and every accepted form, one by one, through :func:`check`; then the attacks
themselves against a real ``tallymark server --no-auth`` and a real ``tallymark ui`` process (a
``text/plain`` form approving a production request, a foreign page deleting an artifact version, a
rebound host name, Comet routes without the key header), each followed by a read showing nothing
changed; then the same attacks from a real Chromium page on another origin.
"""

# ruff: noqa: E501 - the tables keep one form per line, so each refused form reads as one row

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tallymark.server.compat.comet import ROOTS
from tallymark.server.crosssite import Policy, check, declared_types

from servers import ServerProcess, free_port

OWN = "127.0.0.1:5118"
POLICY = Policy(loopback_only=True, public_origin=("https", "tm.example.com", 443), comet_roots=ROOTS)
APPROVE = "/api/v1/requests/1/approve"
DELETE = "/api/v1/workspaces/w/artifacts/data/versions/1.0.0"
JSON = ("content-type", "application/json")
EVIL = "http://evil.example"


def _h(*pairs: tuple[str, str], host: str | None = OWN) -> list[tuple[str, str]]:
    return ([("host", host)] if host is not None else []) + list(pairs)


# (what, method, path, headers, status, fragment of the message)
REFUSED = [
    # rule 1: the Host of a loopback-only server (every method, reads included)
    ("rebound name", "GET", "/api/v1/health", _h(host="evil.example:5118"), 421, "'evil.example:5118'"),
    ("name ending like loopback", "GET", "/", _h(host="localhost.evil.example"), 421, "DNS rebinding"),
    ("trailing dot", "GET", "/", _h(host="localhost."), 421, "addressed to"),
    ("non-loopback IP", "GET", "/", _h(host="10.0.0.7:5118"), 421, "'10.0.0.7:5118'"),
    ("no Host", "GET", "/", _h(host=None), 421, "no Host header"),
    ("two Hosts", "GET", "/", _h(("host", "localhost")), 421, "2 Host headers"),
    ("userinfo in Host", "GET", "/", _h(host="u@127.0.0.1"), 421, "not a host name"),
    ("space in Host", "GET", "/", _h(host="127.0.0.1 evil"), 421, "not a host name"),
    ("port not a number", "GET", "/", _h(host="127.0.0.1:http"), 421, "not a host name"),
    ("port out of range", "GET", "/", _h(host="127.0.0.1:99999"), 421, "not a host name"),
    ("empty port", "GET", "/", _h(host="127.0.0.1:"), 421, "not a host name"),
    ("Comet read, rebound", "GET", "/clientlib/isAlive/ver", _h(host="evil.example"), 421, "rebinding"),
    # rule 2: the origin of unsafe requests
    ("foreign Origin", "POST", APPROVE, _h(JSON, ("origin", EVIL)), 403, "'http://evil.example'"),
    ("another port", "POST", APPROVE, _h(JSON, ("origin", "http://127.0.0.1:8888")), 403, "cross-site"),
    ("another scheme", "POST", APPROVE, _h(JSON, ("origin", "https://127.0.0.1:5118")), 403, "cross-site"),
    ("localhost is not 127.0.0.1", "POST", APPROVE, _h(JSON, ("origin", "http://localhost:5118")), 403, "own"),
    ("Origin: null", "POST", APPROVE, _h(JSON, ("origin", "null")), 403, "Origin: null"),
    ("Origin with a path", "POST", APPROVE, _h(JSON, ("origin", "http://127.0.0.1:5118/x")), 403, "cross-site"),
    ("Origin not a URL", "POST", APPROVE, _h(JSON, ("origin", "127.0.0.1:5118")), 403, "cross-site"),
    ("two Origins", "POST", APPROVE, _h(JSON, ("origin", "http://" + OWN), ("origin", EVIL)), 403, "2 Origin"),
    ("foreign Referer", "POST", APPROVE, _h(JSON, ("referer", EVIL + "/page.html")), 403, "Referer"),
    ("Referer not http", "POST", APPROVE, _h(JSON, ("referer", "about:blank")), 403, "Referer"),
    ("Sec-Fetch-Site cross-site", "POST", APPROVE, _h(JSON, ("sec-fetch-site", "cross-site")), 403, "cross-site"),
    ("Sec-Fetch-Site same-site", "POST", APPROVE, _h(JSON, ("sec-fetch-site", "same-site")), 403, "same-site"),
    ("Sec-Fetch-Site unknown", "POST", APPROVE, _h(JSON, ("sec-fetch-site", "sideways")), 403, "sideways"),
    (
        "Sec-Fetch-Site beats a matching Origin",
        "POST",
        APPROVE,
        _h(JSON, ("origin", "http://" + OWN), ("sec-fetch-site", "cross-site")),
        403,
        "cross-site",
    ),
    ("DELETE from a foreign page", "DELETE", DELETE, _h(("origin", EVIL)), 403, "evil.example"),
    ("DELETE from Origin: null", "DELETE", DELETE, _h(("origin", "null")), 403, "null"),
    ("PUT", "PUT", "/api/v1/blobs/" + "a" * 64, _h(("origin", EVIL)), 403, "cross-site"),
    ("PATCH", "PATCH", APPROVE, _h(("origin", EVIL)), 403, "cross-site"),
    ("unknown method is unsafe", "PROPFIND", "/", _h(("origin", EVIL)), 403, "cross-site"),
    ("UI path", "POST", "/w/models/m", _h(("origin", EVIL)), 403, "cross-site"),
    ("WebSocket from a foreign page", "WEBSOCKET", "/", _h(("origin", EVIL)), 403, "cross-site"),
    ("Comet, foreign page with a key", "POST", "/clientlib/logger/add/run", _h(JSON, ("authorization", "k"), ("origin", EVIL)), 403, "cross-site"),
    # rule 3: REST writes take only their declared content types
    ("text/plain form", "POST", APPROVE, _h(("content-type", "text/plain")), 415, "HTML form"),
    ("text/plain with charset", "POST", APPROVE, _h(("content-type", "text/plain;charset=UTF-8")), 415, "HTML form"),
    ("url-encoded form", "POST", APPROVE, _h(("content-type", "application/x-www-form-urlencoded")), 415, "HTML form"),
    ("multipart form", "POST", APPROVE, _h(("content-type", "multipart/form-data; boundary=x")), 415, "HTML form"),
    ("empty text/plain form", "POST", APPROVE, _h(("content-type", "text/plain"), ("content-length", "0")), 415, "not 'text/plain'"),
    ("upper-case form type", "POST", APPROVE, _h(("content-type", "TEXT/PLAIN")), 415, "HTML form"),
    ("undeclared type", "POST", APPROVE, _h(("content-type", "application/xml")), 415, "application/json"),
    ("body without a type", "POST", APPROVE, _h(("content-length", "2")), 415, "no Content-Type"),
    ("chunked body without a type", "POST", APPROVE, _h(("transfer-encoding", "chunked")), 415, "no Content-Type"),
    ("two types", "POST", APPROVE, _h(JSON, ("content-type", "text/plain")), 415, "2 Content-Type"),
    ("DELETE with a form type", "DELETE", DELETE, _h(("content-type", "text/plain")), 415, "HTML form"),
    ("binary batch as JSON", "POST", "/api/v1/experiments/k/batch/binary", _h(JSON), 415, "x-tallymark-batch"),
    ("asset upload as a form", "POST", "/api/v1/experiments/k/assets", _h(("content-type", "multipart/form-data")), 415, "octet-stream"),
    ("blob as text", "PUT", "/api/v1/blobs/" + "a" * 64, _h(("content-type", "text/plain")), 415, "octet-stream"),
    ("blobs/missing takes JSON", "POST", "/api/v1/blobs/missing", _h(("content-type", "application/octet-stream")), 415, "application/json"),
    # rule 4: Comet writes carry the API key header
    ("Comet without a key", "POST", "/clientlib/logger/add/run", _h(JSON), 403, "Authorization"),
    ("Comet with an empty key", "POST", "/clientlib/logger/add/run", _h(JSON, ("authorization", "")), 403, "COMET_API_KEY"),
    ("Comet REST form", "POST", "/api/rest/v2/write/experiment/html", _h(("content-type", "text/plain")), 403, "Authorization"),
    ("Comet clientlib REST", "POST", "/clientlib/rest/v2/write/experiment/html", _h(JSON), 403, "Authorization"),
    ("Comet multipart form", "POST", "/clientlib/asset/upload", _h(("content-type", "multipart/form-data")), 403, "Authorization"),
]  # fmt: skip

# (what, method, path, headers[, policy])
ACCEPTED = [
    ("a read from a foreign page (no CORS: it cannot read the answer)", "GET", "/api/v1/health", _h(("origin", EVIL))),
    ("OPTIONS", "OPTIONS", APPROVE, _h(("origin", EVIL))),
    ("localhost, any port", "GET", "/", _h(host="localhost:1234")),
    ("LOCALHOST", "GET", "/", _h(host="LOCALHOST")),
    ("[::1]", "GET", "/", _h(host="[::1]:5118")),
    ("127.0.0.2", "GET", "/", _h(host="127.0.0.2")),
    ("the public_url host", "GET", "/", _h(host="tm.example.com")),
    ("the UI's own approve", "POST", APPROVE, _h(JSON, ("origin", "http://" + OWN), ("sec-fetch-site", "same-origin"))),
    ("localhost page, localhost Host", "POST", APPROVE, _h(JSON, ("origin", "http://localhost:5118"), host="localhost:5118")),
    ("default port", "POST", APPROVE, _h(JSON, ("origin", "http://localhost"), host="localhost:80")),
    ("IPv6 page", "POST", APPROVE, _h(JSON, ("origin", "http://[::1]:5118"), host="[::1]:5118")),
    ("behind a TLS proxy at public_url", "POST", APPROVE, _h(JSON, ("origin", "https://tm.example.com"), host="tm.example.com")),
    ("same-origin Referer, no Origin", "POST", APPROVE, _h(JSON, ("referer", f"http://{OWN}/w/models/m"))),
    ("Sec-Fetch-Site none", "POST", APPROVE, _h(JSON, ("sec-fetch-site", "none"))),
    ("SDK: JSON, no Origin", "POST", APPROVE, _h(("content-type", "application/json; charset=utf-8"))),
    ("SDK: no body, no type", "POST", "/api/v1/experiments/k/end", _h(("content-length", "0"))),
    ("SDK: DELETE", "DELETE", DELETE, _h()),
    ("SDK: binary batch", "POST", "/api/v1/experiments/k/batch/binary", _h(("content-type", "application/x-tallymark-batch"))),
    ("SDK: asset upload", "POST", "/api/v1/experiments/k/assets", _h(("content-type", "application/octet-stream"))),
    ("SDK: blob", "PUT", "/api/v1/blobs/" + "a" * 64, _h(("content-type", "application/octet-stream"))),
    ("comet_ml: JSON with its key", "POST", "/clientlib/logger/add/run", _h(JSON, ("authorization", "k"))),
    ("comet_ml: multipart with its key", "POST", "/clientlib/asset/upload", _h(("content-type", "multipart/form-data; boundary=b"), ("authorization", "k"))),
    ("UI path, same origin", "POST", "/w/models/m", _h(("origin", "http://" + OWN))),
    ("WebSocket, same origin", "WEBSOCKET", "/", _h(("origin", "http://" + OWN))),
    ("not loopback-only: any Host", "GET", "/", _h(host="tm.internal"), Policy(False, None, ROOTS)),
    ("not loopback-only: its own page", "POST", APPROVE, _h(JSON, ("origin", "http://tm.internal"), host="tm.internal"), Policy(False, None, ROOTS)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "method", "path", "headers", "status", "fragment"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_refused(what, method, path, headers, status, fragment) -> None:  # noqa: ARG001 - ids
    refusal = check(POLICY, method, path, "http", headers)
    assert refusal is not None, f"{what} was let through"
    assert refusal.status == status and fragment in refusal.message, refusal


@pytest.mark.parametrize("case", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted(case) -> None:
    what, method, path, headers, *policy = case
    assert check(policy[0] if policy else POLICY, method, path, "http", headers) is None, what


def test_a_foreign_page_is_refused_where_the_server_is_not_loopback_only_too() -> None:
    policy = Policy(False, None, ROOTS)
    refusal = check(policy, "POST", APPROVE, "http", _h(JSON, ("origin", EVIL), host="tm.internal"))
    assert refusal is not None and refusal.status == 403
    refusal = check(policy, "POST", APPROVE, "http", _h(("content-type", "text/plain"), host="tm.internal"))
    assert refusal is not None and refusal.status == 415


def test_every_declared_request_body_type_is_accepted(tmp_path) -> None:
    """The OpenAPI of every REST write against :func:`declared_types`, so neither drifts alone."""
    from fastapi.testclient import TestClient

    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    with TestClient(
        create_app(Settings(home=tmp_path / "h"), warm_after=None), base_url="http://127.0.0.1"
    ) as c:
        spec = c.get("/api/v1/openapi.json").json()
    raw = set()
    for path, ops in spec["paths"].items():
        concrete = path.replace("{", "").replace("}", "")
        for method, op in ops.items():
            if method.upper() in ("GET", "HEAD", "OPTIONS"):
                continue
            types = declared_types(concrete)
            if types != ("application/json",):
                raw.add((method.upper(), path))
            for media_type in op.get("requestBody", {}).get("content", {}):
                assert media_type in types, (method, path, media_type, types)
    assert raw == {
        ("POST", "/api/v1/experiments/{key}/batch/binary"),
        ("POST", "/api/v1/experiments/{key}/assets"),
        ("PUT", "/api/v1/blobs/{sha256}"),
        ("POST", "/api/v1/workspaces/{workspace}/endpoints/{name}/predictions"),
    }


def test_a_websocket_from_a_foreign_page_is_closed_before_the_app(tmp_path) -> None:
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    app = create_app(Settings(home=tmp_path / "h", loopback_only=False))  # its Host is "testserver"
    with TestClient(app, base_url="http://127.0.0.1") as c:
        with pytest.raises(WebSocketDisconnect) as info, c.websocket_connect("/", headers={"origin": EVIL}):
            pass
    assert info.value.code == 1008 and "cross-site" in info.value.reason


# --- the attacks, against real server processes -------------------------------------------------


class UIProcess(ServerProcess):
    """``tallymark ui`` (loopback, the embedded home) instead of ``tallymark server --no-auth``."""

    what = "tallymark ui"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tallymark", "ui", "--port", str(self.port), "--home", str(self.home)]


@pytest.fixture(scope="module", params=["server --no-auth", "ui"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = ServerProcess if request.param == "server --no-auth" else UIProcess
    proc = kind(tmp_path_factory.mktemp("crosssite"), port=free_port())
    proc.start()
    try:
        yield proc.url
    finally:
        proc.stop()


def _sdk(url: str, method: str, path: str, body: object = None, user: str = "alice") -> httpx.Response:
    """A request as tallymark's SDK sends it: JSON, no Origin."""
    r = httpx.request(method, url + path, json=body, headers={"X-Tallymark-User": user}, timeout=30)
    assert r.status_code < 300, r.text
    return r


def _pending_request(url: str) -> tuple[str, int]:
    """A fresh model version with a pending production request by alice: (model name, request id)."""
    key, name = uuid.uuid4().hex, f"m{uuid.uuid4().hex[:8]}"
    _sdk(url, "POST", "/api/v1/experiments", {"key": key, "workspace": "w", "project": "p"})
    _sdk(url, "POST", f"/api/v1/experiments/{key}/models", {"name": "model", "remote_uri": "s3://b/m"})
    _sdk(
        url,
        "POST",
        f"/api/v1/workspaces/w/models/{name}/versions",
        {"experiment_key": key, "experiment_model": "model"},
    )
    r = _sdk(
        url, "POST", f"/api/v1/workspaces/w/models/{name}/versions/1.0.0/requests", {"status": "production"}
    )
    return name, r.json()["id"]


def _state(url: str, name: str, request_id: int) -> str:
    reqs = httpx.get(f"{url}/api/v1/workspaces/w/models/{name}/requests", timeout=30).json()["requests"]
    return next(r["state"] for r in reqs if r["id"] == request_id)


def _artifact_version(url: str) -> str:
    name = f"a{uuid.uuid4().hex[:8]}"
    _sdk(url, "POST", f"/api/v1/workspaces/w/artifacts/{name}/versions", {"artifact_type": "dataset"})
    return name


def _versions(url: str, name: str) -> list[str]:
    r = httpx.get(f"{url}/api/v1/workspaces/w/artifacts/{name}/versions", timeout=30)
    if r.status_code == 404:  # its last version deleted
        return []
    return [v["version"] for v in r.json()["versions"]]


# What an attacker's page can make a browser send without asking: the three form encodings (what
# <form enctype=…> and fetch(no-cors) send), with the page's Origin — or, from an old browser or
# behind a privacy extension, with no Origin at all.
FORMS = {
    "text/plain": {"content": b'{"comment": "lgtm"}', "headers": {"content-type": "text/plain"}},
    "urlencoded": {"content": b"comment=lgtm", "headers": {"content-type": "application/x-www-form-urlencoded"}},
    "multipart": {"files": {"comment": (None, b"lgtm")}},
}  # fmt: skip
ORIGINS = {"foreign Origin": {"origin": EVIL}, "Origin: null": {"origin": "null"}, "no Origin": {}}


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("form", FORMS)
def test_a_cross_site_form_cannot_approve_a_production_request(served, form, origin) -> None:
    name, request_id = _pending_request(served)
    spec = dict(FORMS[form])
    headers = {**spec.pop("headers", {}), **ORIGINS[origin], "X-Tallymark-User": "bob"}
    r = httpx.post(f"{served}/api/v1/requests/{request_id}/approve", headers=headers, timeout=30, **spec)
    assert r.status_code == (415 if origin == "no Origin" else 403), r.text
    assert r.json()["error"]["message"]
    assert _state(served, name, request_id) == "pending"


@pytest.mark.parametrize("origin", ["foreign Origin", "Origin: null"])
def test_a_foreign_page_cannot_delete_an_artifact_version(served, origin) -> None:
    name = _artifact_version(served)
    for headers in ({**ORIGINS[origin]}, {**ORIGINS[origin], "content-type": "application/json"}):
        r = httpx.delete(f"{served}/api/v1/workspaces/w/artifacts/{name}/versions/1.0.0", headers=headers)
        assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"], r.text
    assert _versions(served, name) == ["1.0.0"]


def test_the_ui_page_itself_and_the_sdk_still_approve_and_delete(served) -> None:
    """The UI's Approve (registry.js): same-origin fetch, JSON, X-Tallymark-User; then the SDK's way."""
    name, request_id = _pending_request(served)
    page = {"origin": served, "referer": f"{served}/w/models/{name}", "sec-fetch-site": "same-origin"}
    r = httpx.post(
        f"{served}/api/v1/requests/{request_id}/approve",
        json={"comment": None},
        headers={**page, "X-Tallymark-User": "bob"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    name2, request2 = _pending_request(served)
    _sdk(served, "POST", f"/api/v1/requests/{request2}/reject", {"comment": "no"}, user="bob")
    assert _state(served, name2, request2) == "rejected"
    artifact = _artifact_version(served)
    r = httpx.delete(f"{served}/api/v1/workspaces/w/artifacts/{artifact}/versions/1.0.0", headers=page)
    assert r.status_code == 200, r.text
    assert _versions(served, artifact) == []


def test_ui_paths_refuse_foreign_pages_and_let_their_own_reach_the_routes(served) -> None:
    r = httpx.post(
        f"{served}/w/models/m",
        content=b"a=b",
        headers={"origin": EVIL, "content-type": FORMS["urlencoded"]["headers"]["content-type"]},
    )
    assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"], r.text
    r = httpx.post(f"{served}/w/models/m", content=b"a=b", headers={"origin": served})
    assert r.status_code == 405, r.text  # reached the UI's routes, which take no POST
    assert httpx.get(f"{served}/", headers={"origin": EVIL}).status_code == 200  # reads are safe


COMET_RUN = "/clientlib/logger/add/run"


def _comet_body() -> dict[str, object]:
    key = uuid.uuid4().hex
    return {"apiKey": "k", "experimentKey": key, "projectName": "p", "teamName": "w", "offline": False}


@pytest.mark.parametrize(
    ("what", "headers", "form"),
    [
        ("text/plain form from a foreign page", {"origin": EVIL, "content-type": "text/plain"}, True),
        ("multipart form from a foreign page", {"origin": EVIL}, "multipart"),
        ("JSON without the key header", {"content-type": "application/json"}, False),
        ("text/plain form, no Origin", {"content-type": "text/plain"}, True),
        ("with a key, from a foreign page", {"origin": EVIL, "authorization": "k", "content-type": "application/json"}, False),
        ("with a key, Origin: null", {"origin": "null", "authorization": "k", "content-type": "application/json"}, False),
    ],
)  # fmt: skip
def test_comet_routes_refuse_browser_requests_in_comets_error_shape(served, what, headers, form) -> None:
    body = _comet_body()
    kwargs = {"files": {"x": (None, b"1")}} if form == "multipart" else {"content": json.dumps(body).encode()}
    for root in ("/clientlib", "/api/rest/v2", "/clientlib/rest/v2"):
        path = COMET_RUN if root == "/clientlib" else f"{root}/write/experiment/html"
        r = httpx.post(served + path, headers=headers, timeout=30, **kwargs)
        assert r.status_code == 403, (what, root, r.text)
        assert r.headers["content-type"] == "application/json"  # exactly: comet_ml compares strings
        assert r.json()["msg"].startswith("tallymark: ") and r.json()["sdk_error_code"], r.text
    assert httpx.get(f"{served}/api/v1/experiments/{body['experimentKey']}").status_code == 404


def test_comet_ml_requests_pass(served) -> None:
    """What comet_ml sends: JSON and the key in Authorization, no Origin."""
    body = _comet_body()
    r = httpx.post(served + COMET_RUN, json=body, headers={"Authorization": "k"}, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{served}/api/v1/experiments/{body['experimentKey']}").status_code == 200


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.mark.parametrize("path", ["/api/v1/health", "/", "/clientlib/isAlive/ver", "/docs"])
def test_a_rebound_host_name_is_refused(served, path) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends that name as Host."""
    r = httpx.get(served + path, headers={"Host": f"rebind.evil.example:{_port(served)}"}, timeout=30)
    assert r.status_code == 421, r.text
    assert "rebind.evil.example" in r.text and "DNS rebinding" in r.text
    r = httpx.post(
        served + "/api/v1/requests/1/approve",
        json={},
        headers={
            "Host": f"rebind.evil.example:{_port(served)}",
            "Origin": f"http://rebind.evil.example:{_port(served)}",
        },
    )  # same-origin for the browser, still refused
    assert r.status_code == 421, r.text
    for host in (f"localhost:{_port(served)}", f"127.0.0.1:{_port(served)}"):
        assert httpx.get(served + path, headers={"Host": host}, timeout=30).status_code == 200


def test_no_cors_headers_on_any_answer(served) -> None:
    preflight = httpx.options(
        f"{served}/api/v1/requests/1/approve",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")], preflight.headers
    for path in ("/api/v1/health", "/", "/clientlib/isAlive/ver"):
        r = httpx.get(served + path, headers={"Origin": EVIL})
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], (path, r.headers)


# --- the same attacks from a real browser on another origin -------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium(served: str) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # rebind.test resolves to the server's address, as a rebinding attacker's DNS would answer
        args = ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP rebind.test 127.0.0.1"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" enctype="{enctype}" action="{action}"><input name='{{"comment": "' value='x"}}'></form>
<script>document.getElementById("f").submit();</script></body></html>"""


@pytest.mark.parametrize(
    "enctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_page_on_another_site_cannot_approve_in_a_real_browser(served, chromium, enctype) -> None:
    name, request_id = _pending_request(served)
    context = chromium.new_context()
    try:
        page = context.new_page()
        action = f"{served}/api/v1/requests/{request_id}/approve"
        html = ATTACK_PAGE.format(enctype=enctype, action=action)
        page.route(
            "http://evil.test/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body=html),
        )
        with page.expect_response(lambda r: r.url == action) as answer:
            page.goto("http://evil.test/")
        response = answer.value
        assert response.status == 403, response.text()
        assert response.request.header_value("origin") == "http://evil.test"
        # fetch(no-cors): any body, no preflight, the answer unreadable — but the write would happen
        page.evaluate("url => fetch(url, {method: 'POST', mode: 'no-cors', body: '{}'})", action)
    finally:
        context.close()
    assert _state(served, name, request_id) == "pending"


def test_a_rebound_name_gets_nothing_in_a_real_browser(served, chromium) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"http://rebind.test:{_port(served)}/")
        assert response is not None and response.status == 421
        assert "DNS rebinding" in page.content()
    finally:
        context.close()
