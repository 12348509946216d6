"""The first server admin: ``tallymark admin init``. No default credentials exist anywhere.

:func:`init_admin` creates a server-admin user and one API key for them in one transaction, and
returns the key (the only time it is shown). It refuses with :class:`Conflict` when any server admin
exists already, enabled or disabled, so it cannot be used to take over a set-up server; from then
on admins are added by admins (``tallymark admin users add NAME --admin``).

Two ``admin init`` running at once on one store: the write transaction is serialised (SQLite
``BEGIN IMMEDIATE``; on PostgreSQL the unique user name and an advisory lock), so one wins and the
other is refused.
"""

from __future__ import annotations

from sqlalchemy import func, select, text

from tallymark.service import audit
from tallymark.service.apikeys import NewKey, insert_key, parse_duration
from tallymark.service.errors import Conflict
from tallymark.service.store import Store
from tallymark.service.users import check_user_name, insert_user
from tallymark.store.schema import users

__all__ = ["has_admin", "init_admin"]

_INIT_LOCK = 7263520  # PostgreSQL advisory lock id (migrations use 7263519)


def has_admin(store: Store) -> bool:
    """True once ``admin init`` has run (a server with auth and no admin must say to run it)."""
    with store.db.read() as conn:
        return bool(
            conn.execute(select(func.count()).select_from(users).where(users.c.is_admin.is_(True))).scalar()
        )


def init_admin(store: Store, name: str, expires: str | None = None) -> NewKey:
    """Create the first server admin ``name`` and return their API key (show it once)."""
    check_user_name(name)
    expires_in = None if expires is None else parse_duration(expires)
    with store.db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_INIT_LOCK})"))
        existing = conn.execute(select(users.c.name).where(users.c.is_admin.is_(True)).limit(1)).scalar()
        if existing is not None:
            raise Conflict(
                f"this store has a server admin already ({existing}); `admin init` only sets up a new "
                "store. An admin adds more with `tallymark admin users add NAME --admin`"
            )
        user = insert_user(conn, name, None, True, name)
        new = insert_key(conn, user.id, user.name, "admin init", expires_in, name)
        payload = {"key_id": new.id, "expires_at": new.expires_at}
        audit.append(conn, name, "admin.init", ("user", user.name), None, payload)
        return new
