"""Every route × every kind of caller, against a real auth-on server (issue 9, "deny by default").

The routes are not listed here: they are walked on the app (REST, UI pages and their ``/-/`` helpers,
the comet_ml adapter), and what each caller must get follows from the permission the route declares
(:mod:`tallymark.service.operations`):

=================  =========  ======  ======  =====  ========  =====  ============
permission         anonymous  viewer  member  admin  approver  other  server admin
=================  =========  ======  ======  =====  ========  =====  ============
public             ok         ok      ok      ok     ok        ok     ok
authenticated      401        ok      ok      ok     ok        ok     ok
workspace:viewer   401        ok      ok      ok     ok        404    404
workspace:member   401        403     ok      ok     ok        404    404
workspace:admin    401        403     403     ok     403       404    404
approver           401        403     403     403    ok        404    404
server:admin       401        404     404     404    404       404    ok
=================  =========  ======  ======  =====  ========  =====  ============

"other" is a member of another workspace, "server admin" a server admin with no role in ``risk``:
both get 404, as for an object that does not exist. "ok" means the request reached the route: not
401, not 403 and not the permission check's 404 (the route may still answer 404 for an object,
or 422 for the empty body a write is sent here; a public route's own answer, such as a login's 401
for a wrong key, is its business). No route answers 5xx.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tallymark.server.app import create_app
from tallymark.server.permissions import Need, walk_routes
from tallymark.settings import Settings
from test_auth import world  # noqa: F401 - the module-scoped seeded server, a fresh one for this module

CALLERS = ("anonymous", "viewer", "member", "admin", "approver", "other", "server_admin")
OK = "ok"
EXPECTED: dict[str, dict[str, Any]] = {
    "public": dict.fromkeys(CALLERS, OK),
    "authenticated": {**dict.fromkeys(CALLERS, OK), "anonymous": 401},
    "workspace:viewer": {**dict.fromkeys(CALLERS, OK), "anonymous": 401, "other": 404, "server_admin": 404},
    "workspace:member": {
        **dict.fromkeys(CALLERS, OK), "anonymous": 401, "viewer": 403, "other": 404, "server_admin": 404,
    },
    "workspace:admin": {
        "anonymous": 401, "viewer": 403, "member": 403, "admin": OK, "approver": 403, "other": 404,
        "server_admin": 404,
    },
    "approver": {
        "anonymous": 401, "viewer": 403, "member": 403, "admin": 403, "approver": OK, "other": 404,
        "server_admin": 404,
    },
    "server:admin": {**dict.fromkeys(CALLERS, 404), "anonymous": 401, "server_admin": OK},
}  # fmt: skip
# The permission check's own refusals (a route's "no such object" reads differently).
REFUSED_404 = re.compile(r"visible to|needs a server admin")


def _walk() -> list[tuple[str, str, Need | None]]:
    """(method, path, the route's Need) for every route of the process."""
    app: Any = create_app(Settings(home=Path("/nonexistent-never-opened")), warm_after=None)
    while not hasattr(app, "warm"):
        app = app.app
    routes = walk_routes([app.api, app.ui.get(), app.comet.get()])
    return [(r.method, r.path, r.need) for r in routes if r.method != "HEAD"]


ROUTES = _walk()
SKIP = {"/docs/oauth2-redirect"}  # FastAPI's own, no dependency can be attached (public, see BUILTIN)


def _fill(path: str, w: Any) -> str:
    artifacts = "/artifacts/" in path
    values = {
        "workspace": "risk",
        "project": "fraud",
        "key": w.risk_key,
        "key:tmkey": w.risk_key,
        "name": ("fraud-dataset" if artifacts else "m") if "/admin/" not in path else "nobody",
        "version": "9.9.9" if artifacts else w.model_version,  # never a real artifact version: no delete
        "request_id": str(w.request_id),
        "sha256": w.blob,
        "asset_id": "1",
        "token": "x",
        "path:path": "app.css",
        "user": "nobody",
        "key_id": "999999",
    }
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), path)


def _request(method: str, path: str, w: Any) -> dict[str, Any]:
    """Query and body naming workspace ``risk`` (or its experiment), so a route finds its workspace."""
    query = {"workspace": "risk", "workspaceName": "risk", "experimentKey": w.risk_key}
    if path.endswith(("/series", "/render", "/metric")) or path == "/api/v1/experiments":
        query |= {"keys": w.risk_key, "name": "m"}
    if path == "/api/v1/lineage":
        query = {"node": f"experiment:{w.risk_key}"}
    if path.endswith("/assets") and method == "POST":
        query = {"meta": "{}"}
    kw: dict[str, Any] = {"params": query}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        if path.endswith(("/batch/binary",)):
            kw["content"], kw["headers"] = b"", {"Content-Type": "application/x-tallymark-batch"}
        elif path.endswith(("/assets", "/predictions")) or (
            path.startswith("/api/v1/blobs/") and method == "PUT"
        ):  # raw bodies (a prediction-log chunk is Arrow bytes)
            kw["content"], kw["headers"] = b"", {"Content-Type": "application/octet-stream"}
        elif method != "DELETE":
            body = {
                "workspace": "risk",
                "workspaceName": "risk",
                "teamName": "risk",
                "experimentKey": w.risk_key,
            }
            if path == "/api/v1/experiments":
                body = {"workspace": "risk", "project": "fraud"}  # no key: 422 for whoever may create
            kw["content"], kw["headers"] = json.dumps(body), {"Content-Type": "application/json"}
    return kw


def _permission(method: str, need: Need) -> str:
    p = need.permission_for(method)
    return "approver" if need.approver else p


def _outcome(r: httpx.Response, permission: str) -> Any:
    assert r.status_code < 500, r.text
    if permission == "public":  # no check refuses: a 401 there is the route's own (a wrong key at login)
        return OK
    if r.status_code in (401, 403):
        return r.status_code
    if r.status_code == 404 and REFUSED_404.search(r.text):
        return 404
    return OK


@pytest.mark.parametrize(
    "method,path,need",
    [x for x in ROUTES if x[1] not in SKIP and x[2] is not None],
    ids=[f"{m} {p}" for m, p, n in ROUTES if p not in SKIP and n is not None],
)
def test_each_route_answers_each_caller_as_its_permission_says(world, method, path, need):  # noqa: F811
    permission = _permission(method, need)
    url, kw = world.server.url + _fill(path, world), _request(method, path, world)
    got = {}
    for caller in CALLERS:
        headers = {**world.headers(caller), **kw.get("headers", {})}
        # Same-origin, as the UI and the SDK send them (cross-site refusals are tests/test_cross_site.py).
        r = httpx.request(method, url, headers=headers, params=kw["params"], content=kw.get("content"),
                          timeout=30, follow_redirects=False)  # fmt: skip
        got[caller] = _outcome(r, permission)
    want = EXPECTED[permission]
    wrong = {c: f"got {got[c]}, want {want[c]}" for c in CALLERS if got[c] != want[c]}
    assert not wrong, f"{method} {path} declares {permission}: {wrong}"


def test_every_route_is_walked():
    assert not [
        (m, p)
        for m, p, n in ROUTES
        if n is None and p not in SKIP and not p.startswith(("/docs", "/redoc", "/api/v1/openapi"))
    ]
    assert len(ROUTES) > 250
