"""Users of a server: add, list, disable. Managed by server admins (see docs/security.md).

A user name is 1–200 ASCII characters: letters, digits and ``_ . @ + -``, starting with a letter or
digit (so ``dana``, ``dana.lee@example.com`` and ``svc-ci`` work). Only ASCII, because a name is
what people read in approvals and the audit log: ``dаna`` with a Cyrillic ``а`` must not pass for
``dana``. For the same reason two names that differ only in case (``Dana``, ``dana``) cannot both
exist.

Disabling a user takes effect at once (there is no ``enable`` yet): from then on none of their API
keys authenticates (:func:`tallymark.service.apikeys.authenticate` checks ``disabled_at`` on every
call) and their UI sessions are revoked (:mod:`tallymark.service.sessions`), but the keys are
*not* revoked, so ``keys list`` still shows them as they were. The last enabled server admin
cannot be disabled (nobody could manage the server any more).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError

from tallymark.service import audit
from tallymark.service.caller import Caller, require_server_admin
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.store import Store, now_ms
from tallymark.store.schema import api_keys, memberships, users

__all__ = ["USER_NAME_PATTERN", "add_user", "check_user_name", "disable_user", "list_users", "user_row"]

USER_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}"
_USER_NAME_RE = re.compile(USER_NAME_PATTERN)


def check_user_name(name: str) -> str:
    """``name`` if it can name a user, else :class:`Invalid` saying why."""
    if not isinstance(name, str) or not _USER_NAME_RE.fullmatch(name):
        raise Invalid(
            f"{name!r} cannot name a user: use 1–200 ASCII letters, digits and _ . @ + -, "
            "starting with a letter or digit"
        )
    return name


def check_display_name(display_name: str | None) -> str | None:
    if display_name is None:
        return None
    from tallymark.storable import name_problem

    problem = name_problem(display_name, max_length=200)
    if problem is not None:
        raise Invalid(f"display name: {problem}")
    return display_name


def user_row(conn: Connection, name: str) -> Row[Any]:
    """The users row called ``name``, else :class:`NotFound`."""
    row = conn.execute(select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user called {name!r}; add one with `tallymark admin users add`")
    return row


def insert_user(
    conn: Connection, name: str, display_name: str | None, is_admin: bool, created_by: str
) -> Row[Any]:
    """Insert a user in the caller's transaction (names checked, case-insensitive duplicates refused)."""
    check_user_name(name)
    check_display_name(display_name)
    clash = conn.execute(select(users.c.name).where(func.lower(users.c.name) == name.lower())).scalar()
    if clash is not None:
        raise Conflict(
            f"a user called {clash!r} exists already"
            + ("" if clash == name else f" (names may not differ only in case from {name!r})")
        )
    try:
        conn.execute(
            users.insert().values(
                name=name,
                display_name=display_name,
                is_admin=is_admin,
                created_at=now_ms(),
                created_by=created_by,
            )
        )
    except IntegrityError:  # added by someone else between the check and the insert (PostgreSQL)
        raise Conflict(f"a user called {name!r} exists already") from None
    return user_row(conn, name)


def user_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "displayName": row.display_name,
        "isAdmin": bool(row.is_admin),
        "disabledAt": row.disabled_at,
        "createdAt": row.created_at,
        "createdBy": row.created_by,
    }


def add_user(
    store: Store, caller: Caller, name: str, display_name: str | None = None, is_admin: bool = False
) -> dict[str, Any]:
    """Add a user (no key yet: give them one with :func:`tallymark.service.apikeys.create_key`)."""
    require_server_admin(caller, "adding a user")
    with store.db.write() as conn:
        row = insert_user(conn, name, display_name, is_admin, caller.name)
        audit.append(conn, caller.name, "user.add", ("user", row.name), None, {"is_admin": is_admin})
        return user_dict(row)


def list_users(store: Store, caller: Caller) -> list[dict[str, Any]]:
    """Every user with how many workspaces they belong to and how many usable keys they hold."""
    require_server_admin(caller, "listing users")
    now = now_ms()
    with store.db.read() as conn:
        rows = conn.execute(select(users).order_by(users.c.name)).all()
        ws: dict[int, int] = dict(
            conn.execute(select(memberships.c.user_id, func.count()).group_by(memberships.c.user_id)).all()
        )
        live = (
            select(api_keys.c.user_id, func.count())
            .where(api_keys.c.revoked_at.is_(None))
            .where((api_keys.c.expires_at.is_(None)) | (api_keys.c.expires_at > now))
            .group_by(api_keys.c.user_id)
        )
        keys: dict[int, int] = dict(conn.execute(live).all())
    # A disabled user's keys are not revoked but cannot be used: they count as none usable.
    return [
        user_dict(r)
        | {"workspaces": ws.get(r.id, 0), "activeKeys": 0 if r.disabled_at is not None else keys.get(r.id, 0)}
        for r in rows
    ]


def disable_user(store: Store, caller: Caller, name: str) -> dict[str, Any]:
    """Disable a user: their keys stop authenticating and their sessions end at once (keys are not
    revoked, see above)."""
    require_server_admin(caller, "disabling a user")
    with store.db.write() as conn:
        row = user_row(conn, name)
        if row.disabled_at is not None:
            raise Conflict(f"user {name!r} is disabled already")
        if row.is_admin:
            others = conn.execute(
                select(func.count())
                .select_from(users)
                .where(users.c.is_admin.is_(True), users.c.disabled_at.is_(None), users.c.id != row.id)
            ).scalar_one()
            if others == 0:
                raise Conflict(
                    f"{name!r} is the last enabled server admin: add another admin before disabling this one"
                )
        conn.execute(users.update().where(users.c.id == row.id).values(disabled_at=now_ms()))
        from tallymark.service.sessions import end_user_sessions  # a module import would be a cycle

        ended = end_user_sessions(conn, row.id)
        audit.append(conn, caller.name, "user.disable", ("user", row.name), None, {"ended_sessions": ended})
        unrevoked = conn.execute(
            select(func.count())
            .select_from(api_keys)
            .where(api_keys.c.user_id == row.id, api_keys.c.revoked_at.is_(None))
        ).scalar_one()
        return user_dict(user_row(conn, name)) | {"unrevokedKeys": unrevoked, "endedSessions": ended}
