"""Workspaces as server admins manage them: create one explicitly, list them.

A workspace name follows the same rule as everywhere else (1–200 characters, no ``/`` or ``\\``,
not ``.`` or ``..``, no control characters: :data:`tallymark.service.models.ScopeName`).

Logging into a workspace that does not exist still creates it on first use
(:mod:`tallymark.service.experiments`); the authorization work of issue 9 decides who may do that.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from tallymark.service import audit
from tallymark.service.caller import Caller, require_server_admin
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.models import WorkspaceName
from tallymark.service.store import Store, now_ms
from tallymark.store.schema import memberships, projects, workspaces

__all__ = ["check_workspace_name", "create_workspace", "list_workspaces", "workspace_row"]

_NAME = TypeAdapter(WorkspaceName)


def check_workspace_name(name: str) -> str:
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        msg = str(exc.errors()[0].get("msg", "invalid")).removeprefix("Value error, ")
        raise Invalid(f"workspace name: {msg}") from None


def workspace_row(conn: Connection, name: str) -> Row[Any]:
    """The workspaces row called ``name``, else :class:`NotFound`."""
    row = conn.execute(select(workspaces).where(workspaces.c.name == name)).first()
    if row is None:
        raise NotFound(f"no workspace called {name!r}; create it with `tallymark admin workspaces create`")
    return row


def create_workspace(store: Store, caller: Caller, name: str) -> dict[str, Any]:
    """Create an empty workspace; :class:`Conflict` when it exists (it may have been made by logging)."""
    require_server_admin(caller, "creating a workspace")
    check_workspace_name(name)
    with store.db.write() as conn:
        if conn.execute(select(workspaces.c.id).where(workspaces.c.name == name)).first() is not None:
            raise Conflict(f"workspace {name!r} exists already")
        try:
            conn.execute(workspaces.insert().values(name=name, created_at=now_ms()))
        except IntegrityError:  # created at the same moment, e.g. by an experiment logging into it
            raise Conflict(f"workspace {name!r} exists already") from None
        row = workspace_row(conn, name)
        audit.append(conn, caller.name, "workspace.create", ("workspace", name), name, {})
    return {"id": row.id, "name": row.name, "createdAt": row.created_at, "members": 0, "projects": 0}


def list_workspaces(store: Store, caller: Caller) -> list[dict[str, Any]]:
    """Every workspace with its member and project counts."""
    require_server_admin(caller, "listing workspaces")
    with store.db.read() as conn:
        rows = conn.execute(select(workspaces).order_by(workspaces.c.name)).all()
        members: dict[int, int] = dict(
            conn.execute(
                select(memberships.c.workspace_id, func.count()).group_by(memberships.c.workspace_id)
            ).all()
        )
        projs: dict[int, int] = dict(
            conn.execute(
                select(projects.c.workspace_id, func.count()).group_by(projects.c.workspace_id)
            ).all()
        )
    return [
        {
            "id": r.id,
            "name": r.name,
            "createdAt": r.created_at,
            "members": members.get(r.id, 0),
            "projects": projs.get(r.id, 0),
        }
        for r in rows
    ]
