"""Server administration over HTTP: users, workspaces, memberships, API keys, login links and
sessions (server admins only).

The same operations as ``tallymark admin … --home/--db`` (src/tallymark/cli_admin.py), for an admin
who reaches the server, not its store: every route declares its operation (all ``server:admin`` in
tallymark.service.operations), and the service functions check the caller again and write the audit
entry in the same transaction. A new key is answered once, with its secret; no route ever answers a
key again. A login link is answered once too (its URL holds the token); its base URL is the server's
``public_url``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from tallymark.server.auth import require_caller
from tallymark.server.permissions import need
from tallymark.server.routes.deps import IdPath, StoreDep, TallyJSON, reply
from tallymark.service import apikeys, memberships, presign, sessions, users, workspaces
from tallymark.service.errors import ServiceError
from tallymark.service.secret import SecretError

router = APIRouter(prefix="/admin", tags=["admin"])


class ServerSecretUnusable(ServiceError):
    status = 500
    code = "server_secret"


Name = Annotated[str, Body(embed=True, min_length=1, max_length=200)]


def _key_out(new: apikeys.NewKey) -> dict[str, Any]:
    return {
        "id": new.id,
        "user": new.user,
        "name": new.name,
        "prefix": new.prefix,
        "createdAt": new.created_at,
        "expiresAt": new.expires_at,
        "key": new.secret,  # shown this once; the store keeps only its SHA-256
    }


@router.get("/users", dependencies=[need("user.list")])
def list_users(request: Request, store: StoreDep) -> TallyJSON:
    return reply({"users": users.list_users(store, require_caller(request))})


@router.post("/users", status_code=201, dependencies=[need("user.add")])
def add_user(
    request: Request,
    store: StoreDep,
    name: Name,
    display_name: Annotated[str | None, Body(embed=True, max_length=200)] = None,
    admin: Annotated[bool, Body(embed=True)] = False,
) -> TallyJSON:
    return reply(users.add_user(store, require_caller(request), name, display_name, admin), 201)


@router.post("/users/{name}/disable", dependencies=[need("user.disable")])
def disable_user(name: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply(users.disable_user(store, require_caller(request), name))


@router.get("/workspaces", dependencies=[need("workspace.admin_list")])
def list_workspaces(request: Request, store: StoreDep) -> TallyJSON:
    return reply({"workspaces": workspaces.list_workspaces(store, require_caller(request))})


@router.post("/workspaces", status_code=201, dependencies=[need("workspace.create")])
def create_workspace(request: Request, store: StoreDep, name: Name) -> TallyJSON:
    return reply(workspaces.create_workspace(store, require_caller(request), name), 201)


@router.get("/workspaces/{workspace}/members", dependencies=[need("member.list")])
def list_members(workspace: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply({"members": memberships.list_members(store, require_caller(request), workspace)})


@router.put("/workspaces/{workspace}/members/{user}", dependencies=[need("member.set")])
def set_member(
    workspace: str,
    user: str,
    request: Request,
    store: StoreDep,
    role: Annotated[str, Body(embed=True)],
    approver: Annotated[bool, Body(embed=True)] = False,
) -> TallyJSON:
    caller = require_caller(request)
    return reply(memberships.add_member(store, caller, workspace, user, role, approver))


@router.delete("/workspaces/{workspace}/members/{user}", dependencies=[need("member.remove")])
def remove_member(workspace: str, user: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply(memberships.remove_member(store, require_caller(request), workspace, user))


@router.get("/keys", dependencies=[need("key.list")])
def list_keys(
    request: Request, store: StoreDep, user: Annotated[str | None, Query(max_length=200)] = None
) -> TallyJSON:
    return reply({"keys": apikeys.list_keys(store, require_caller(request), user)})


@router.post("/keys", status_code=201, dependencies=[need("key.create")])
def create_key(
    request: Request,
    store: StoreDep,
    user: Name,
    name: Annotated[str | None, Body(embed=True, max_length=200)] = None,
    expires: Annotated[str | None, Body(embed=True, max_length=20)] = None,
) -> TallyJSON:
    new = apikeys.create_key(store, require_caller(request), user, name, expires)
    return reply(_key_out(new), 201)


@router.post("/keys/{key_id}/revoke", dependencies=[need("key.revoke")])
def revoke_key(key_id: IdPath, request: Request, store: StoreDep) -> TallyJSON:
    return reply(apikeys.revoke_key(store, require_caller(request), key_id))


@router.post("/links", status_code=201, dependencies=[need("link.issue")])
def issue_link(
    request: Request,
    store: StoreDep,
    user: Name,
    workspace: Annotated[str | None, Body(embed=True, max_length=200)] = None,
    path: Annotated[str | None, Body(embed=True, max_length=presign.MAX_PATH_LENGTH)] = None,
    expires: Annotated[str, Body(embed=True, max_length=20)] = "5m",
    session: Annotated[str, Body(embed=True, max_length=20)] = "12h",
) -> TallyJSON:
    """A single-use login link for ``user`` (the same rules as ``tallymark admin presign``)."""
    caller = require_caller(request)
    try:
        link = presign.issue_link(store, caller, user, workspace, path, expires, session)
    except SecretError as exc:  # the server's own secret file is unusable: its operator must fix it
        raise ServerSecretUnusable(str(exc)) from None
    out = {
        "url": link.url,  # shown this once: the token in it logs the user in
        "linkId": link.link_id,
        "user": link.user,
        "path": link.path,
        "expiresAt": link.expires_at,
        "sessionMs": link.session_ms,
    }
    return reply(out, 201)


@router.get("/users/{name}/sessions", dependencies=[need("session.list")])
def list_sessions(name: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply({"sessions": sessions.list_user_sessions(store, require_caller(request), name)})


@router.post("/users/{name}/sessions/revoke", dependencies=[need("session.revoke")])
def revoke_sessions(name: str, request: Request, store: StoreDep) -> TallyJSON:
    n = sessions.revoke_user_sessions(store, require_caller(request), name)
    return reply({"user": name, "revoked": n})
