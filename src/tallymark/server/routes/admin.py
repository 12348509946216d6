"""Server administration over HTTP: users, workspaces, memberships and API keys (server admins only).

The same operations as ``tallymark admin … --home/--db`` (src/tallymark/cli_admin.py), for an admin
who reaches the server, not its store: every route is ``server:admin``, and the service functions
check the caller again and write the audit entry in the same transaction. A new key is answered once,
with its secret; no route ever answers a key again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from tallymark.server.auth import require_caller
from tallymark.server.permissions import need
from tallymark.server.routes.deps import IdPath, StoreDep, TallyJSON, reply
from tallymark.service import apikeys, memberships, users, workspaces

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[need("server:admin")])

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


@router.get("/users")
def list_users(request: Request, store: StoreDep) -> TallyJSON:
    return reply({"users": users.list_users(store, require_caller(request))})


@router.post("/users", status_code=201)
def add_user(
    request: Request,
    store: StoreDep,
    name: Name,
    display_name: Annotated[str | None, Body(embed=True, max_length=200)] = None,
    admin: Annotated[bool, Body(embed=True)] = False,
) -> TallyJSON:
    return reply(users.add_user(store, require_caller(request), name, display_name, admin), 201)


@router.post("/users/{name}/disable")
def disable_user(name: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply(users.disable_user(store, require_caller(request), name))


@router.get("/workspaces")
def list_workspaces(request: Request, store: StoreDep) -> TallyJSON:
    return reply({"workspaces": workspaces.list_workspaces(store, require_caller(request))})


@router.post("/workspaces", status_code=201)
def create_workspace(request: Request, store: StoreDep, name: Name) -> TallyJSON:
    return reply(workspaces.create_workspace(store, require_caller(request), name), 201)


@router.get("/workspaces/{workspace}/members")
def list_members(workspace: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply({"members": memberships.list_members(store, require_caller(request), workspace)})


@router.put("/workspaces/{workspace}/members/{user}")
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


@router.delete("/workspaces/{workspace}/members/{user}")
def remove_member(workspace: str, user: str, request: Request, store: StoreDep) -> TallyJSON:
    return reply(memberships.remove_member(store, require_caller(request), workspace, user))


@router.get("/keys")
def list_keys(
    request: Request, store: StoreDep, user: Annotated[str | None, Query(max_length=200)] = None
) -> TallyJSON:
    return reply({"keys": apikeys.list_keys(store, require_caller(request), user)})


@router.post("/keys", status_code=201)
def create_key(
    request: Request,
    store: StoreDep,
    user: Name,
    name: Annotated[str | None, Body(embed=True, max_length=200)] = None,
    expires: Annotated[str | None, Body(embed=True, max_length=20)] = None,
) -> TallyJSON:
    new = apikeys.create_key(store, require_caller(request), user, name, expires)
    return reply(_key_out(new), 201)


@router.post("/keys/{key_id}/revoke")
def revoke_key(key_id: IdPath, request: Request, store: StoreDep) -> TallyJSON:
    return reply(apikeys.revoke_key(store, require_caller(request), key_id))
