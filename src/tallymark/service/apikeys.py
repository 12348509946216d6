"""API keys: their format, how they are stored, and how a presented key becomes a :class:`Caller`.

Format (documented for secret scanners in docs/security.md, "API keys")::

    tm_ + 34 random base62 characters + 6 base62 characters of checksum      (43 characters)
    regex: tm_[0-9A-Za-z]{40}

* The alphabet, in digit order, is ``0-9A-Za-z`` (``0`` = 0 … ``Z`` = 35, ``a`` = 36 … ``z`` = 61).
* The 34 random characters are drawn with :mod:`secrets` (about 202 bits).
* The checksum is the CRC-32 (zlib / ISO-HDLC, the one of ``zlib.crc32``) of those 34 characters as
  ASCII, written in base62, most significant digit first, left-padded with ``0`` to 6 characters.
  Anyone can check it offline without asking the server: a string that matches the regex and whose
  checksum agrees is, with near certainty, a real tallymark key and not a random match. It protects
  nothing (it is not secret); it only tells a scanner "this leaked string is a key: revoke it".

Storage and checks:

* A key is shown once, when it is created (:class:`NewKey` carries it; its ``repr`` does not), and
  stored only as the hex SHA-256 of the whole key plus its first 11 characters (``tm_`` and 8 more)
  so that lists can tell keys apart. A slow password hash is not needed: the key has ~202 random
  bits, so its SHA-256 cannot be reversed by guessing, and a fast hash keeps authentication cheap.
* :func:`authenticate` refuses a malformed key or a wrong checksum before touching the database, then
  looks the key up by its hash and compares the hashes with :func:`hmac.compare_digest`. A key
  authenticates only while it is not revoked, not expired (``expires_at`` is past at the instant it
  equals now) and its user is not disabled; otherwise the answer is None, the same for every reason,
  so a caller learns nothing about which keys exist.
* ``last_used_at`` is written at most once per :data:`LAST_USED_GRANULARITY_MS` (a minute) per key:
  authentication is a read unless the stored time is older than that, and the update's own ``WHERE``
  keeps concurrent servers from writing it twice.
* No function here puts a key into an exception message, a log line or a ``repr``; error messages
  name keys by id and prefix.

Expiry durations (``--expires``): a positive whole number and a unit, ``s``, ``m``, ``h``, ``d`` or
``w`` (``30m``, ``12h``, ``90d``), at most 10 years; see :func:`parse_duration`.

>>> key = generate_key()
>>> is_well_formed(key), len(key)
(True, 43)
>>> parse_duration("12h")
43200000
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, select

from tallymark.service import audit
from tallymark.service.caller import Caller, require_server_admin
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.memberships import caller_of
from tallymark.service.store import Store, now_ms
from tallymark.service.users import user_row
from tallymark.store.schema import api_keys, users

__all__ = [
    "KEY_PATTERN",
    "LAST_USED_GRANULARITY_MS",
    "NewKey",
    "authenticate",
    "checksum",
    "create_key",
    "generate_key",
    "is_well_formed",
    "key_sha256",
    "list_keys",
    "parse_duration",
    "revoke_key",
]

PREFIX = "tm_"
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 34
CHECKSUM_LENGTH = 6
KEY_PATTERN = r"tm_[0-9A-Za-z]{40}"
_KEY_RE = re.compile(KEY_PATTERN)
SHOWN_PREFIX_LENGTH = len(PREFIX) + 8
LAST_USED_GRANULARITY_MS = 60_000
MAX_DURATION_MS = 3650 * 86_400_000
_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_DURATION_RE = re.compile(r"([0-9]{1,12})([smhdw])")


def _base62(n: int, width: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(ALPHABET[r])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    """The 6-character base62 CRC-32 of the random part of a key (see the module docstring)."""
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate_key() -> str:
    """A new key: ``tm_`` + 34 random base62 characters + their 6-character checksum."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + body + checksum(body)


def is_well_formed(key: object) -> bool:
    """True when ``key`` matches ``tm_[0-9A-Za-z]{40}`` and its checksum agrees (no database needed)."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        return False
    body = key[len(PREFIX) : len(PREFIX) + RANDOM_LENGTH]
    return checksum(body) == key[len(PREFIX) + RANDOM_LENGTH :]


def key_sha256(key: str) -> str:
    """What the store keeps of a key: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> int:
    """``"90d"`` → milliseconds; :class:`Invalid` with an example for anything else.

    >>> parse_duration("30m")
    1800000
    """
    m = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise Invalid(
            f"{text!r} is not a duration: write a whole number and a unit, e.g. 30m, 12h or 90d "
            "(units: s, m, h, d, w)"
        )
    ms = int(m.group(1)) * _UNITS_MS[m.group(2)]
    if ms <= 0:
        raise Invalid(f"{text!r}: a duration must be longer than zero")
    if ms > MAX_DURATION_MS:
        raise Invalid(
            f"{text!r} is longer than 10 years (3650d); leave out --expires for a key that never expires"
        )
    return ms


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only moment the secret exists outside its holder. Print it once."""

    id: int
    user: str
    name: str | None
    prefix: str
    created_at: int
    expires_at: int | None
    secret: str = field(repr=False)

    def __str__(self) -> str:  # an f-string of the object must not print the secret either
        return f"API key {self.id} ({self.prefix}…) of {self.user}"


def insert_key(
    conn: Any, user_id: int, user: str, name: str | None, expires_in_ms: int | None, created_by: str
) -> NewKey:
    """Create a key for ``user_id`` in the caller's transaction (used by create_key and admin init)."""
    if name is not None:
        from tallymark.storable import name_problem

        problem = name_problem(name, max_length=200)
        if problem is not None:
            raise Invalid(f"key name: {problem}")
    secret = generate_key()
    now = now_ms()
    expires_at = None if expires_in_ms is None else now + expires_in_ms
    res = conn.execute(
        api_keys.insert().values(
            user_id=user_id,
            name=name,
            key_sha256=key_sha256(secret),
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            created_at=now,
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    return NewKey(
        id=res.inserted_primary_key[0],
        user=user,
        name=name,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        created_at=now,
        expires_at=expires_at,
        secret=secret,
    )


def _audit_key(
    conn: Connection, actor: str, action: str, key_id: int, user: str, payload: dict[str, Any]
) -> None:
    """An audit entry about a key: its id, user and prefix at most — never the key or its hash."""
    audit.append(conn, actor, action, ("api_key", str(key_id)), None, {"user": user, **payload})


def create_key(
    store: Store, caller: Caller, user: str, name: str | None = None, expires: str | None = None
) -> NewKey:
    """Create an API key for ``user`` (``expires`` like ``"90d"``; None = never). Shown once."""
    require_server_admin(caller, "creating an API key")
    expires_in = None if expires is None else parse_duration(expires)
    with store.db.write() as conn:
        u = user_row(conn, user)
        if u.disabled_at is not None:
            raise Conflict(f"user {user!r} is disabled: a key for them would not authenticate")
        new = insert_key(conn, u.id, u.name, name, expires_in, caller.name)
        _audit_key(
            conn, caller.name, "api_key.create", new.id, u.name, {"name": name, "expires_at": new.expires_at}
        )
        return new


def key_state(row: Any, now: int) -> str:
    """``active`` | ``revoked`` | ``expired`` | ``user disabled``: why a key would (not) authenticate."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.disabled_at is not None:
        return "user disabled"
    return "active"


def _key_dict(row: Any, now: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user,
        "name": row.name,
        "prefix": row.prefix,
        "createdAt": row.created_at,
        "createdBy": row.created_by,
        "expiresAt": row.expires_at,
        "lastUsedAt": row.last_used_at,
        "revokedAt": row.revoked_at,
        "state": key_state(row, now),
    }


def _key_select() -> Select[Any]:  # never selects key_sha256
    return select(
        api_keys.c.id,
        api_keys.c.name,
        api_keys.c.prefix,
        api_keys.c.created_at,
        api_keys.c.created_by,
        api_keys.c.expires_at,
        api_keys.c.last_used_at,
        api_keys.c.revoked_at,
        users.c.name.label("user"),
        users.c.disabled_at,
    ).select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))


def list_keys(store: Store, caller: Caller, user: str | None = None) -> list[dict[str, Any]]:
    """Keys (all, or one user's) with their state; never the key itself, which is not stored."""
    require_server_admin(caller, "listing API keys")
    with store.db.read() as conn:
        stmt = _key_select().order_by(api_keys.c.id)
        if user is not None:
            stmt = stmt.where(api_keys.c.user_id == user_row(conn, user).id)
        rows = conn.execute(stmt).all()
    now = now_ms()
    return [_key_dict(r, now) for r in rows]


def revoke_key(store: Store, caller: Caller, key_id: int) -> dict[str, Any]:
    """Revoke key ``key_id`` for good; :class:`Conflict` if it was revoked already."""
    require_server_admin(caller, "revoking an API key")
    with store.db.write() as conn:
        row = conn.execute(_key_select().where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"no API key with id {key_id}; `tallymark admin keys list` shows them")
        if row.revoked_at is not None:
            raise Conflict(f"API key {key_id} ({row.prefix}…) was revoked already")
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now_ms()))
        row = conn.execute(_key_select().where(api_keys.c.id == key_id)).one()
        _audit_key(conn, caller.name, "api_key.revoke", key_id, row.user, {"prefix": row.prefix})
    return _key_dict(row, now_ms())


def authenticate(store: Store, raw_key: str, now: int | None = None) -> Caller | None:
    """The :class:`Caller` a presented key stands for, or None (malformed, unknown, revoked, expired,
    user disabled: one answer for all, see the module docstring). Updates ``last_used_at`` at most
    once a minute per key.

    >>> caller = authenticate(store, "tm_…")  # doctest: +SKIP
    """
    if not is_well_formed(raw_key):
        return None
    digest = key_sha256(raw_key)
    now = now_ms() if now is None else now
    with store.db.read() as conn:
        row = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.key_sha256,
                api_keys.c.expires_at,
                api_keys.c.revoked_at,
                api_keys.c.last_used_at,
                users.c.id.label("user_id"),
                users.c.name,
                users.c.is_admin,
                users.c.disabled_at,
            )
            .select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))
            .where(api_keys.c.key_sha256 == digest)
        ).first()
        # The lookup is by an index on the hash, so timing can tell at most something about a hash
        # prefix, never about the key; the stored hash is still compared in constant time.
        if row is None or not hmac.compare_digest(row.key_sha256, digest):
            return None
        if row.revoked_at is not None or row.disabled_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        caller = caller_of(conn, row, "api_key", key_id=row.id)
    if row.last_used_at is None or row.last_used_at <= now - LAST_USED_GRANULARITY_MS:
        _touch(store, row.id, now)
    return caller


def _touch(store: Store, key_id: int, now: int) -> None:
    if store.db.read_only is not None:  # a read-only store still authenticates; it just cannot note it
        return
    stale = (api_keys.c.last_used_at.is_(None)) | (api_keys.c.last_used_at <= now - LAST_USED_GRANULARITY_MS)
    with store.db.write() as conn:
        conn.execute(api_keys.update().where(api_keys.c.id == key_id, stale).values(last_used_at=now))
