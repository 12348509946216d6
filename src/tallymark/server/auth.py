"""Authentication: which :class:`~tallymark.service.caller.Caller` a request comes from.

Specification (docs/security.md, "Authentication and permissions"):

* **Auth on** (``tallymark server`` without ``--no-auth``; ``Settings.auth``): a request is
  authenticated by the first resolver in :data:`RESOLVERS` that recognises it:

  1. ``Authorization: Bearer tm_…`` (the tallymark SDK, from ``api_key=`` / ``TALLYMARK_API_KEY``);
  2. ``Authorization: tm_…`` (the raw key the comet_ml SDK sends as its ``COMET_API_KEY``);
  3. the UI session cookie (resolved by ``session_caller`` from the ``presign`` work: the one place
     where it plugs in is marked in :data:`RESOLVERS`).

  ``X-Tallymark-User`` is ignored. A request no resolver recognises is anonymous: every route whose
  permission is not ``public`` answers 401 (see :mod:`tallymark.server.permissions`). A server
  whose store has no admin yet answers 401 saying to run ``tallymark admin init``.
* **Auth off** (``--no-auth``, loopback only): today's identity, ``X-Tallymark-User`` or else the
  server's user, as a local admin caller (every role everywhere, as the embedded home).

Keys are checked by SHA-256 only (no password hash per request) and the answer for a key hash is
cached for :data:`CACHE_TTL_S` (under a second): a key revoked or a user disabled through another
server process sharing the store is refused here within that time. Negative answers are cached too,
so a flood of wrong keys costs one hash each, not one query each. A key never appears in a log line
or an error message: errors name the scheme, never the value.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import Request

from tallymark.server.request_id import request_id_of
from tallymark.service import sessions
from tallymark.service.apikeys import authenticate
from tallymark.service.caller import Caller, local_admin
from tallymark.service.errors import ServiceError
from tallymark.service.store import Store

__all__ = ["CACHE_TTL_S", "RESOLVERS", "Unauthenticated", "current_caller", "needs_init"]

CACHE_TTL_S = 0.5
_CACHE_MAX = 10_000


class Unauthenticated(ServiceError):
    status = 401
    code = "unauthenticated"


class CsrfRefused(ServiceError):
    status = 403
    code = "csrf"


class _TTLCache:
    """SHA-256 of a key → (monotonic deadline, Caller | None); thread-safe, bounded."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[str, tuple[float, Caller | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, compute: Callable[[], Caller | None]) -> Caller | None:
        now = time.monotonic()
        hit = self._data.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._data) >= _CACHE_MAX:
                self._data.clear()  # a flood of distinct wrong keys must not grow memory
            self._data[digest] = (now + self.ttl, value)
        return value


_keys = _TTLCache(CACHE_TTL_S)
_admin_seen: dict[str, float] = {}  # database URL → when an admin was last seen (monotonic)


def _header(request: Request, name: bytes) -> str | None:
    """The first ``name`` header (lower case, as ASGI gives them), read from the scope: cheaper than
    building ``request.headers`` for every resolver of every request."""
    for key, value in request.scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _presented_key(request: Request) -> str | None:
    header = _header(request, b"authorization")
    if not header:
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value if value.startswith("tm_") else None


def api_key_caller(store: Store, request: Request) -> Caller | None:
    """Resolvers 1 and 2: ``Authorization: Bearer tm_…`` or a raw ``Authorization: tm_…``."""
    key = _presented_key(request)
    if key is None:
        return None
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return _keys.get(digest, lambda: authenticate(store, key))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie_caller(store: Store, request: Request) -> Caller | None:
    """Resolver 3: the UI session cookie (tallymark.service.sessions).

    A cookie is sent by the browser on its own, so an unsafe request authenticated by it must also
    carry the session's CSRF token in ``X-Tallymark-CSRF`` (the UI's scripts read it from the
    companion cookie ``tallymark_csrf``, which a page of another origin cannot read). Without it the
    request is not authenticated by the cookie, and :func:`require_caller` says why.
    """
    if _header(request, b"cookie") is None:  # most API requests: no cookie to parse
        return None
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if not cookie:
        return None
    session = sessions.open_session(store, cookie)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not sessions.check_csrf(
        session, request.headers.get(sessions.CSRF_HEADER)
    ):
        request.state.csrf_refused = True
        return None
    return session.caller


# The first resolver that answers a Caller wins. The session cookie plugs in here (last, so a key
# sent by a script is never overridden by a browser's cookie).
RESOLVERS: list[Callable[[Store, Request], Caller | None]] = [api_key_caller, session_cookie_caller]


def auth_enabled(request: Request) -> bool:
    return bool(getattr(request.app.state.settings, "auth", False))


def needs_init(store: Store) -> bool:
    """True while the store has no admin (cached for a second): every request answers 401 then."""
    from tallymark.service.bootstrap import has_admin

    url = store.settings.database_url
    now = time.monotonic()
    if now - _admin_seen.get(url, -1e9) < 1.0:
        return False
    if has_admin(store):
        _admin_seen[url] = now
        return False
    return True


_SCOPE_KEY = "tallymark.caller"  # where the resolved caller is kept for the rest of the request


def current_caller(request: Request) -> Caller | None:
    """The request's caller (resolved once per request), or None when it is anonymous."""
    scope = request.scope
    cached: Any = scope.get(_SCOPE_KEY, _MISSING)
    if cached is not _MISSING:
        return cached
    caller: Caller | None
    if not auth_enabled(request):
        from tallymark.server.identity import header_user

        caller = local_admin(header_user(request))
    else:
        store = request.app.state.store
        caller = None
        for resolve in RESOLVERS:
            caller = resolve(store, request)
            if caller is not None:
                break
    rid = request_id_of(scope)
    if caller is not None and rid is not None:
        caller = replace(caller, request_id=rid)  # the cached caller is shared: a copy per request
    scope[_SCOPE_KEY] = caller  # the scope, not request.state: every dependency has its own Request
    return caller


def require_caller(request: Request) -> Caller:
    """The caller, or 401 with a message that says what to do (never echoing what was sent)."""
    caller = current_caller(request)
    if caller is not None:
        return caller
    store = request.app.state.store
    if getattr(request.state, "csrf_refused", False):
        raise CsrfRefused(
            f"this request was sent with the UI's session cookie but without its CSRF token "
            f"({sessions.CSRF_HEADER}); reload the page and try again"
        )
    if needs_init(store):
        raise Unauthenticated(
            "this server has no users yet: run `tallymark admin init` on its store to create the first "
            "admin and their API key"
        )
    if request.headers.get("authorization"):
        raise Unauthenticated(
            "the API key is not valid (unknown, revoked or expired, or its user is disabled)"
        )
    raise Unauthenticated(
        "authentication required: send `Authorization: Bearer tm_…` with a tallymark API key "
        "(SDK: TALLYMARK_API_KEY; comet_ml: COMET_API_KEY)"
    )


_MISSING = object()
