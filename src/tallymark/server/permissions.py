"""Deny by default: every route of the process declares the permission it needs, and it is checked here.

A declaration is a FastAPI dependency, :func:`need`, put on the route (or on its router), e.g.
``@router.get(..., dependencies=[need("experiment.get")])``, naming an operation of
:mod:`tallymark.service.operations`, which gives the permission. The permissions, weakest first:

``public``            anyone, also anonymous (health, static files, OpenAPI/docs)
``authenticated``     any valid key or session
``workspace:viewer``  a role in the workspace the route touches (read)
``workspace:member``  member or admin there (create and log experiments, artifacts, models, requests)
``workspace:admin``   admin there (delete)
``server:admin``      a server admin (admin routes, raw blobs by hash)

An operation with ``approver=True`` also needs the approver flag of that workspace (four eyes;
that the approver is not the requester is the registry's rule, with the name coming from the key).
``need_by_method()`` (the comet_ml adapter) is ``comet.read`` (``workspace:viewer``) for GET and
``comet.write`` (``workspace:member``) otherwise. This check is the route's; the service function
the route calls checks the caller again (:mod:`tallymark.service.guard`).

The workspace a route touches is found from what the request names, in this order of sources: the
path's ``workspace``, ``key`` (an experiment) and ``request_id`` (a status request), the query's
``workspace``/``workspaceName``, ``experimentKey``, ``keys`` (comma-separated experiment keys) and
``node`` (a lineage node), and a JSON body's ``workspace``/``workspaceName``/``teamName``,
``experimentKey``/``experiment_key``/``key`` and ``keys``. Owners of global ids come from
:mod:`tallymark.service.lookups`. Every workspace found must grant the role.

Answers: anonymous → 401; a workspace where the caller has no role → **404**, the same answer as for an
object that does not exist (no existence leak); a role too weak → 403. An object named by key that
does not exist passes through, so the route answers its usual 404.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from tallymark.server.auth import auth_enabled, require_caller
from tallymark.service import guard, lookups
from tallymark.service.caller import Caller, Role
from tallymark.service.errors import NotFound

__all__ = [
    "PERMISSIONS",
    "Permission",
    "need",
    "need_by_method",
    "operations_of",
    "permission_of",
    "visible_workspaces",
]

from tallymark.service.operations import PERMISSIONS, Permission, operation

# Routes FastAPI adds by itself (no dependency can be attached): the API's description is public.
BUILTIN: dict[str, str] = {
    "/docs": "public",
    "/redoc": "public",
    "/docs/oauth2-redirect": "public",
    "/api/v1/openapi.json": "public",
}

_BODY_WORKSPACE = ("workspace", "workspaceName", "teamName")
_BODY_KEY = ("experimentKey", "experiment_key", "key")


class Need:
    """The dependency that declares (``.permission``) and enforces a route's permission."""

    def __init__(
        self,
        read: str,
        write: str | None = None,
        approver: bool = False,
        fallback: str | None = None,
        operations: tuple[str, ...] = (),
    ) -> None:
        for p in (read, write or read):
            if p not in PERMISSIONS:
                raise ValueError(f"unknown permission {p!r}")
        self.read, self.write, self.approver = read, write or read, approver
        self.fallback = fallback  # the workspace a write names none of goes to (comet's default)
        self.operations = operations  # the listed operations this declaration comes from

    def permission_for(self, method: str) -> str:
        return self.read if method in ("GET", "HEAD", "OPTIONS") else self.write

    async def __call__(self, request: Request) -> Caller | None:
        permission = self.permission_for(request.method)
        if permission == "public":
            return None
        if not auth_enabled(request):
            return None  # --no-auth: the local admin may do everything, as in the embedded home
        caller = require_caller(request)
        if permission == "authenticated":
            return caller
        if permission == "server:admin":
            if not caller.is_admin:
                raise NotFound(f"no such route for {caller.name}: it needs a server admin")
            return caller
        needed: Role = permission.split(":", 1)[1]  # type: ignore[assignment]
        found = await _workspaces_of(request)
        if not found and self.fallback is not None and permission != self.read:
            found = {self.fallback}
        for ws in found:
            check(caller, ws, needed, self.approver)
        return caller


def check(caller: Caller, workspace: str, needed: Role, approver: bool = False) -> None:
    """404 without a role in ``workspace``; 403 with too weak a role or without the approver flag."""
    guard.check_role(caller, workspace, needed, approver)


def need(name: str) -> Any:
    """A route's operation (``dependencies=[need("experiment.create")]``), listed in
    :mod:`tallymark.service.operations`, which gives its permission (KeyError for a name that is
    not listed: a route cannot declare a permission of its own)."""
    op = operation(name)
    return Depends(Need(op.permission, approver=op.approver, operations=(name,)))


def need_by_method(read: str = "comet.read", write: str = "comet.write", fallback: str | None = None) -> Any:
    """GET/HEAD answers operation ``read``, other methods ``write``; a write naming no workspace
    goes to ``fallback``."""
    r, w = operation(read), operation(write)
    return Depends(Need(r.permission, w.permission, fallback=fallback, operations=(read, write)))


def operations_of(route: Any) -> tuple[str, ...]:
    """The listed operations a registered route declares (empty: it declares a bare permission)."""
    dependant = getattr(route, "dependant", None)
    for dep in getattr(dependant, "dependencies", ()):
        if isinstance(dep.call, Need):
            return dep.call.operations
    return ()


def permission_of(route: Any, method: str = "GET") -> str | None:
    """The declared permission of a registered route, or None when it declares none (a bug)."""
    path = getattr(route, "path", None)
    if path in BUILTIN:
        return BUILTIN[path]
    dependant = getattr(route, "dependant", None)
    for dep in getattr(dependant, "dependencies", ()):
        if isinstance(dep.call, Need):
            return dep.call.permission_for(method)
    return None


def visible_workspaces(
    request: Request, items: list[dict[str, Any]], field: str = "name"
) -> list[dict[str, Any]]:
    """Only the workspaces the caller has a role in (all of them with auth off)."""
    if not auth_enabled(request):
        return items
    caller = require_caller(request)
    return [w for w in items if caller.role(w[field]) is not None]


async def _workspaces_of(request: Request) -> set[str]:
    store = request.app.state.store
    names: set[str] = set()
    keys: list[str] = []
    p, q = request.path_params, request.query_params
    if "workspace" in p:
        names.add(str(p["workspace"]))
    if "key" in p:
        keys.append(str(p["key"]))
    if "request_id" in p:
        ws = lookups.request_workspace(store, int(p["request_id"]))
        if ws is not None:
            names.add(ws)
    for field in ("workspace", "workspaceName"):
        if q.get(field):
            names.add(q[field])
    if q.get("experimentKey"):
        keys.append(q["experimentKey"])
    if q.get("keys"):
        keys += [k.strip() for k in q["keys"].split(",") if k.strip()]
    if q.get("node"):
        names |= _node_workspace(store, q["node"])
    body = await _json_body(request)
    if isinstance(body, dict):
        for field in _BODY_WORKSPACE:
            if isinstance(body.get(field), str) and body[field]:
                names.add(body[field])
        for field in _BODY_KEY:
            if isinstance(body.get(field), str):
                keys.append(body[field])
        if isinstance(body.get("keys"), list):
            keys += [k for k in body["keys"] if isinstance(k, str)]
    for key in dict.fromkeys(keys):
        ws = lookups.experiment_workspace(store, key) if len(key) == 32 else None
        if ws is not None:
            names.add(ws)
    return names


def _node_workspace(store: Any, node: str) -> set[str]:
    kind, _, rest = node.partition(":")
    if kind == "experiment":
        ws = lookups.experiment_workspace(store, rest)
        return {ws} if ws else set()
    if kind in ("artifact", "model") and "/" in rest:
        return {rest.split("/", 1)[0]}
    return set()


async def _json_body(request: Request) -> Any:
    """A JSON body's fields (already read by FastAPI for JSON routes; never a streamed upload)."""
    ctype = request.headers.get("content-type", "")
    if "json" not in ctype:
        return None
    try:
        raw = await request.body()
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class RouteDeclaration:
    """One method of one registered route, with the :class:`Need` it declares (None: a bug)."""

    method: str
    path: str
    need: Need | None
    endpoint: Any


def walk_routes(sub_apps: Any) -> list[RouteDeclaration]:
    """Every method of every route of the given FastAPI apps, through included routers (whose
    ``dependencies=`` count for their routes) — the one walk the route tests use."""
    out: list[RouteDeclaration] = []

    def declared(deps: list[Any]) -> Need | None:
        for d in deps:
            if isinstance(getattr(d, "dependency", None), Need):
                return d.dependency
        return None

    def walk(routes: Any, prefix: str, inherited: list[Any]) -> None:
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's included router
                ctx = r.include_context
                walk(r.original_router.routes, prefix + (ctx.prefix or ""), [*inherited, *ctx.dependencies])
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                walk(r.routes, prefix, inherited)
            else:
                need = declared([*inherited, *getattr(r, "dependencies", [])])
                for method in sorted(getattr(r, "methods", None) or {"GET"}):
                    out.append(RouteDeclaration(method, prefix + r.path, need, getattr(r, "endpoint", None)))

    for sub in sub_apps:
        walk(sub.router.routes, "", [])
    return out


def route_permissions(sub_apps: Any) -> list[tuple[str, str, str | None]]:
    """(method, path, declared permission or None) for every route of the given FastAPI apps."""
    return [
        (r.method, r.path, BUILTIN.get(r.path) or (r.need.permission_for(r.method) if r.need else None))
        for r in walk_routes(sub_apps)
    ]
