"""UI sessions: what a login (API key or pre-signed link) leaves in the browser, and how it ends.

The cookie
    ``tallymark_session=tms_`` + 43 base64url characters (32 random bytes from :mod:`secrets`).
    The store keeps only its hex SHA-256 (``sessions.token_sha256``), like an API key: a database
    dump logs nobody in. Attributes (set by the UI routes, :func:`cookie_attributes`):
    ``HttpOnly; SameSite=Lax; Path=/``, plus ``Secure`` when ``Settings.public_url`` is https, and
    ``Max-Age`` = the session's remaining lifetime.

Lifetimes
    A session lives :data:`DEFAULT_LIFETIME_MS` (12 h) unless its login link says otherwise (30 min
    to 12 h, :func:`check_lifetime`). There is no sliding renewal: after ``expires_at`` the user
    logs in again. ``last_seen_at`` is written at most once a minute per session.

What ends a session (:func:`open_session` answers None, one answer for every reason)
    Its expiry (a session whose ``expires_at`` equals now is over), :func:`revoke_session` (logout),
    :func:`revoke_user_sessions` (``tallymark admin sessions revoke --user U``), and disabling the
    user: :func:`tallymark.service.users.disable_user` revokes their sessions in its transaction,
    and :func:`open_session` checks ``disabled_at`` on every call anyway. A malformed cookie is
    refused before the database is asked.

CSRF tokens
    As :mod:`tallymark.server.crosssite` specifies: ``hex(HMAC-SHA256(server secret, "csrf:" +
    cookie value))``. It is bound to the session (another session's token does not match), dies
    with it, needs no storage, and reveals nothing about the cookie (HMAC is one-way).
    :func:`check_csrf` compares in constant time. Every unsafe request authenticated *by the
    cookie* must carry it in ``X-Tallymark-CSRF`` or the form field ``csrf``.

Audit (:func:`tallymark.service.audit.append`, in the transaction that makes the change)
    ``session.login`` (actor: the user; payload: method, key id or link id, session id, expiry),
    ``session.login_failed`` (actor ``anonymous``; payload: the reason only — never the key),
    ``session.logout`` and ``session.revoke`` (an admin ending a user's sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from tallymark.service import audit, guard
from tallymark.service.caller import Caller, require_server_admin
from tallymark.service.errors import Invalid
from tallymark.service.memberships import caller_of
from tallymark.service.secret import load_or_create_secret
from tallymark.service.store import Store, now_ms
from tallymark.store.schema import sessions, users

__all__ = [
    "COOKIE_NAME",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULT_LIFETIME_MS",
    "Session",
    "check_csrf",
    "check_lifetime",
    "cookie_attributes",
    "create_session",
    "csrf_token",
    "end_user_sessions",
    "insert_session",
    "list_user_sessions",
    "login_with_key",
    "open_session",
    "revoke_session",
    "revoke_user_sessions",
    "session_caller",
]

COOKIE_NAME = "tallymark_session"
CSRF_HEADER = "X-Tallymark-CSRF"
CSRF_COOKIE = "tallymark_csrf"  # the token again, readable by the UI's scripts (not HttpOnly)
CSRF_FIELD = "csrf"
MIN_LIFETIME_MS = 30 * 60_000
MAX_LIFETIME_MS = DEFAULT_LIFETIME_MS = 12 * 3_600_000
LAST_SEEN_GRANULARITY_MS = 60_000
_COOKIE_RE = re.compile(r"tms_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Session:
    """A live session: who it is, until when, and the CSRF token its pages carry."""

    id: int
    caller: Caller
    expires_at: int
    method: str
    csrf: str = field(repr=False)


def _sha256(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("ascii")).hexdigest()


def _secret(store: Store) -> bytes:
    return load_or_create_secret(store.settings.secret_file)


def csrf_token(store: Store, cookie: str) -> str:
    """``hex(HMAC-SHA256(server secret, "csrf:" + cookie))``: the token of this session's pages."""
    return hmac.new(_secret(store), b"csrf:" + cookie.encode("ascii"), hashlib.sha256).hexdigest()


def check_csrf(session: Session, presented: str | None) -> bool:
    """True when ``presented`` is this session's CSRF token (constant-time comparison)."""
    if not isinstance(presented, str) or not presented.isascii():
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())


def check_lifetime(ms: int) -> int:
    """``ms`` if a session may last that long (30 min – 12 h), else :class:`Invalid`."""
    if not MIN_LIFETIME_MS <= ms <= MAX_LIFETIME_MS:
        raise Invalid("a session lasts from 30m to 12h (e.g. --session 8h)")
    return ms


def cookie_attributes(store: Store, max_age_s: int) -> dict[str, Any]:
    """Keyword arguments for ``Response.set_cookie`` (see the module docstring)."""
    return {
        "max_age": max(0, max_age_s),
        "path": "/",
        "httponly": True,
        "samesite": "lax",
        "secure": store.settings.public_url.lower().startswith("https://"),
    }


def insert_session(
    conn: Connection,
    user_id: int,
    lifetime_ms: int,
    method: str,
    key_id: int | None = None,
    link_id: str | None = None,
) -> tuple[str, int, int]:
    """Create a session in the caller's write transaction: (cookie value, session id, expires_at)."""
    check_lifetime(lifetime_ms)
    cookie = "tms_" + secrets.token_urlsafe(32)
    now = now_ms()
    res = conn.execute(
        sessions.insert().values(
            token_sha256=_sha256(cookie),
            user_id=user_id,
            created_at=now,
            expires_at=now + lifetime_ms,
            method=method,
            key_id=key_id,
            link_id=link_id,
        )
    )
    pk = res.inserted_primary_key
    assert pk is not None  # an INSERT of one row always has its key
    return cookie, int(pk[0]), now + lifetime_ms


def _audit_login(
    conn: Connection,
    user: str,
    session_id: int,
    expires_at: int,
    how: dict[str, Any],
    request_id: str | None = None,
) -> None:
    payload = {"session_id": session_id, "expires_at": expires_at} | how
    audit.append(conn, user, "session.login", ("user", user), None, payload, request_id)


def create_session(store: Store, user: str, lifetime_ms: int = DEFAULT_LIFETIME_MS) -> str:
    """A new session for ``user`` (audited as a key-less ``session.login``); returns the cookie value.

    Used by tests and tools; logins go through :func:`login_with_key` or a link."""
    from tallymark.service.users import user_row

    with store.db.write() as conn:
        u = user_row(conn, user)
        if u.disabled_at is not None:
            raise Invalid(f"user {user!r} is disabled")
        cookie, sid, expires = insert_session(conn, u.id, lifetime_ms, "direct")
        _audit_login(conn, u.name, sid, expires, {"method": "direct"})
    return cookie


def login_with_key(
    store: Store, raw_key: str, lifetime_ms: int = DEFAULT_LIFETIME_MS, request_id: str | None = None
) -> tuple[str, Session] | None:
    """The login form: a valid API key becomes a session (cookie value, session); else None.

    Both outcomes are audited; a failed one records only that it failed (never the key)."""
    from tallymark.service.apikeys import authenticate

    caller = authenticate(store, raw_key) if isinstance(raw_key, str) else None
    with store.db.write() as conn:
        if caller is None or caller.user_id is None:
            audit.append(
                conn,
                "anonymous",
                "session.login_failed",
                ("session", "key login"),
                None,
                {"reason": "invalid, expired or revoked key, or disabled user"},
                request_id,
            )
            return None
        cookie, sid, expires = insert_session(conn, caller.user_id, lifetime_ms, "key", key_id=caller.key_id)
        _audit_login(conn, caller.name, sid, expires, {"method": "key", "key_id": caller.key_id}, request_id)
    session = open_session(store, cookie)
    return (cookie, session) if session is not None else None


def open_session(store: Store, cookie: str | None, now: int | None = None) -> Session | None:
    """The live session of a cookie value, or None (malformed, unknown, expired, revoked, user
    disabled: one answer for all). Writes ``last_seen_at`` at most once a minute."""
    if not isinstance(cookie, str) or not _COOKIE_RE.fullmatch(cookie):
        return None
    digest = _sha256(cookie)
    now = now_ms() if now is None else now
    with store.db.read() as conn:
        row = conn.execute(
            select(
                sessions.c.id,
                sessions.c.token_sha256,
                sessions.c.expires_at,
                sessions.c.revoked_at,
                sessions.c.last_seen_at,
                sessions.c.method,
                users.c.id.label("user_id"),
                users.c.name,
                users.c.is_admin,
                users.c.disabled_at,
            )
            .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
            .where(sessions.c.token_sha256 == digest)
        ).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            return None
        if row.revoked_at is not None or row.disabled_at is not None or row.expires_at <= now:
            return None
        caller = caller_of(conn, row, "session")
    if (row.last_seen_at is None or row.last_seen_at <= now - LAST_SEEN_GRANULARITY_MS) and (
        store.db.read_only is None
    ):
        stale = sessions.c.last_seen_at.is_(None) | (
            sessions.c.last_seen_at <= now - LAST_SEEN_GRANULARITY_MS
        )
        with store.db.write() as conn:
            conn.execute(sessions.update().where(sessions.c.id == row.id, stale).values(last_seen_at=now))
    return Session(row.id, caller, row.expires_at, row.method, csrf_token(store, cookie))


def session_caller(store: Store, cookie: str | None) -> Caller | None:
    """The :class:`Caller` a session cookie stands for, or None (see :func:`open_session`)."""
    session = open_session(store, cookie)
    return None if session is None else session.caller


def revoke_session(store: Store, cookie: str | None, request_id: str | None = None) -> bool:
    """Logout: end the cookie's session (audited ``session.logout``). False if it was not live."""
    session = open_session(store, cookie)
    if session is None:
        return False
    with store.db.write() as conn:
        audit.lock(conn)  # before the row lock, as audit.lock asks
        done = conn.execute(
            sessions.update()
            .where(sessions.c.id == session.id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now_ms())
        ).rowcount
        if done:
            audit.append(
                conn,
                session.caller.name,
                "session.logout",
                ("user", session.caller.name),
                None,
                {"session_id": session.id},
                request_id,
            )
    return bool(done)


def end_user_sessions(conn: Connection, user_id: int) -> int:
    """Revoke every live session of ``user_id`` in the caller's transaction; how many there were."""
    now = now_ms()
    return conn.execute(
        sessions.update()
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
        .values(revoked_at=now)
    ).rowcount


def revoke_user_sessions(store: Store, caller: Caller, user: str) -> int:
    """End every session of ``user`` now (audited ``session.revoke``); how many were live."""
    from tallymark.service.users import user_row

    require_server_admin(caller, "revoking sessions")
    with guard.write(store, caller, "session.revoke", workspace=None, object=("user", user)) as w:
        u = user_row(w.conn, user)
        n = end_user_sessions(w.conn, u.id)
        w.object, w.payload = ("user", u.name), {"sessions": n}
    return n


def list_user_sessions(store: Store, caller: Caller, user: str) -> list[dict[str, Any]]:
    """The live sessions of ``user`` (never a cookie or its hash): id, how they logged in, when."""
    from tallymark.service.users import user_row

    require_server_admin(caller, "listing sessions")
    guard.allow(caller, "session.list")
    now = now_ms()
    with store.db.read() as conn:
        u = user_row(conn, user)
        rows = conn.execute(
            select(
                sessions.c.id,
                sessions.c.method,
                sessions.c.key_id,
                sessions.c.link_id,
                sessions.c.created_at,
                sessions.c.expires_at,
                sessions.c.last_seen_at,
            )
            .where(sessions.c.user_id == u.id, sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
            .order_by(sessions.c.id)
        ).all()
    return [
        {
            "id": r.id,
            "user": u.name,
            "method": r.method,
            "keyId": r.key_id,
            "linkId": r.link_id,
            "createdAt": r.created_at,
            "expiresAt": r.expires_at,
            "lastSeenAt": r.last_seen_at,
        }
        for r in rows
    ]
