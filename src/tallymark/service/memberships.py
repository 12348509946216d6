"""Workspace memberships: a user's role in one workspace and whether they approve there.

Roles (see docs/security.md for what each may do): ``admin`` manages the workspace's members and
keys and may delete; ``member`` creates and logs experiments, artifacts and models and requests
promotions; ``viewer`` reads. The ``approver`` flag is separate from the role: an approver may
approve someone else's production request in that workspace, never their own. A viewer cannot be an
approver (approving changes a model's status, a write).

A membership belongs to one workspace only: a role in ``A`` grants nothing in ``B``.
:func:`add_member` on an existing membership changes its role and flag (and says what it was).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, select
from sqlalchemy.exc import IntegrityError

from tallymark.service import audit
from tallymark.service.caller import ROLES, AuthMethod, Caller, Role, require_server_admin
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.store import Store, now_ms
from tallymark.service.users import user_row
from tallymark.service.workspaces import workspace_row
from tallymark.store.schema import memberships, users, workspaces

__all__ = ["add_member", "caller_of", "check_role", "list_members", "remove_member", "roles_of"]


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise Invalid(f"{role!r} is not a role: use one of {', '.join(ROLES)}")
    return role


def _member_dict(row: Any) -> dict[str, Any]:
    return {
        "workspace": row.workspace,
        "user": row.user,
        "role": row.role,
        "approver": bool(row.approver),
        "createdAt": row.created_at,
        "createdBy": row.created_by,
        "userDisabled": row.disabled_at is not None,
    }


def _joined() -> Select[Any]:
    return select(
        workspaces.c.name.label("workspace"),
        users.c.name.label("user"),
        users.c.disabled_at,
        memberships.c.role,
        memberships.c.approver,
        memberships.c.created_at,
        memberships.c.created_by,
    ).select_from(
        memberships.join(users, users.c.id == memberships.c.user_id).join(
            workspaces, workspaces.c.id == memberships.c.workspace_id
        )
    )


def add_member(
    store: Store, caller: Caller, workspace: str, user: str, role: str, approver: bool = False
) -> dict[str, Any]:
    """Give ``user`` ``role`` in ``workspace`` (or change it). Returns the membership and ``previous``."""
    require_server_admin(caller, "managing members")
    check_role(role)
    if approver and role == "viewer":
        raise Invalid("a viewer cannot be an approver: approving is a write; make them a member")
    with store.db.write() as conn:
        ws = workspace_row(conn, workspace)
        u = user_row(conn, user)
        key = (memberships.c.user_id == u.id) & (memberships.c.workspace_id == ws.id)
        old = conn.execute(select(memberships.c.role, memberships.c.approver).where(key)).first()
        if old is None:
            try:
                conn.execute(
                    memberships.insert().values(
                        user_id=u.id,
                        workspace_id=ws.id,
                        role=role,
                        approver=approver,
                        created_at=now_ms(),
                        created_by=caller.name,
                    )
                )
            except IntegrityError:  # the same membership added concurrently (PostgreSQL)
                raise Conflict(
                    f"{user!r} was added to {workspace!r} at the same moment; run it again"
                ) from None
            previous = None
        else:
            conn.execute(memberships.update().where(key).values(role=role, approver=approver))
            previous = {"role": old.role, "approver": bool(old.approver)}
        payload = {"role": role, "approver": approver, "previous": previous}
        action = "membership.add" if previous is None else "membership.change"
        audit.append(conn, caller.name, action, ("membership", f"{workspace}/{user}"), workspace, payload)
        row = conn.execute(_joined().where(key)).one()
    return _member_dict(row) | {"previous": previous}


def list_members(store: Store, caller: Caller, workspace: str) -> list[dict[str, Any]]:
    """The members of ``workspace``, by user name."""
    require_server_admin(caller, "listing members")
    with store.db.read() as conn:
        ws = workspace_row(conn, workspace)
        rows = conn.execute(_joined().where(memberships.c.workspace_id == ws.id).order_by(users.c.name)).all()
    return [_member_dict(r) for r in rows]


def remove_member(store: Store, caller: Caller, workspace: str, user: str) -> dict[str, Any]:
    """Take ``user`` out of ``workspace``; what they did there stays attributed to them."""
    require_server_admin(caller, "managing members")
    with store.db.write() as conn:
        ws = workspace_row(conn, workspace)
        u = user_row(conn, user)
        key = (memberships.c.user_id == u.id) & (memberships.c.workspace_id == ws.id)
        row = conn.execute(_joined().where(key)).first()
        if row is None:
            raise NotFound(f"{user!r} is no member of workspace {workspace!r}")
        conn.execute(memberships.delete().where(key))
        audit.append(
            conn, caller.name, "membership.remove", ("membership", f"{workspace}/{user}"), workspace,
            {"role": row.role, "approver": bool(row.approver)},
        )  # fmt: skip
    return _member_dict(row)


def caller_of(conn: Connection, row: Any, auth_method: AuthMethod, key_id: int | None = None) -> Caller:
    """The :class:`Caller` of an authenticated user (``row`` has ``user_id``, ``name``, ``is_admin``),
    with their roles read in ``conn``'s snapshot: one construction for keys and sessions alike."""
    roles, approver = roles_of(conn, row.user_id)
    return Caller(
        user_id=row.user_id,
        name=row.name,
        is_admin=bool(row.is_admin),
        roles=roles,
        approver=approver,
        auth_method=auth_method,
        key_id=key_id,
    )


def roles_of(conn: Connection, user_id: int) -> tuple[dict[str, Role], frozenset[str]]:
    """(workspace → role, workspaces where the user approves) for one user, in ``conn``'s snapshot."""
    rows = conn.execute(
        select(workspaces.c.name, memberships.c.role, memberships.c.approver)
        .select_from(memberships.join(workspaces, workspaces.c.id == memberships.c.workspace_id))
        .where(memberships.c.user_id == user_id)
    ).all()
    return {r.name: r.role for r in rows}, frozenset(r.name for r in rows if r.approver)
