"""Cross-site requests and DNS rebinding: what the server refuses before any route runs.

A page on another web site can make the browser of someone running ``tallymark ui`` (or a
``--no-auth`` server) send requests to it: an HTML form posts ``text/plain``,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` to any address without asking, and
``fetch(url, {mode: "no-cors"})`` posts any body with one of those types or none. The browser cannot
read the answer, but the write happens: a production promotion approved, an artifact version
deleted. A page whose host name the attacker later points at 127.0.0.1 (DNS rebinding) is even
*same-origin* with the server and can read the answers too. :func:`check` refuses these requests;
:class:`CrossSiteMiddleware` applies it to every request of the process (REST, UI, the comet_ml
adapter), in every mode, ``--no-auth`` included.

**Rule 1: the Host (only on a loopback-only server, ``Settings.loopback_only``).** Every request,
reads included, must be addressed (``Host`` header) to ``localhost``, a loopback IP literal
(``127.0.0.1``, ``[::1]``, …) with any port, or the host of ``Settings.public_url``. Refused with
421, naming the host:

* any other name (``evil.example``, ``localhost.evil.example``, ``localhost.``), a non-loopback IP;
* no ``Host`` header at all, more than one, or one that does not parse (``a b``, ``h:port``, ``u@h``).

Why: a rebound name reaches the loopback socket with the attacker's name in ``Host``; the browser
cannot be made to send a loopback name for a page it loaded from elsewhere.

**Rule 2: the origin (every mode).** A request with an unsafe method (anything but ``GET``,
``HEAD``, ``OPTIONS``; unknown methods count as unsafe) or a WebSocket handshake that carries
browser headers must come from the server's own origin: same scheme, host and port as either the
``Host`` it was reached at (with the connection's scheme) or ``Settings.public_url``. Refused with
403, naming the origin:

* a foreign ``Origin`` (another host, another port — ``http://localhost:8888`` is a different site
  from ``http://localhost:5118`` — or another scheme), and ``Origin: null`` (sandboxed frames,
  ``data:`` pages, ``no-referrer`` pages, cross-site redirects);
* an ``Origin`` that is not a bare ``scheme://host[:port]``, or more than one ``Origin`` header;
* without ``Origin``: a ``Referer`` of another origin, or one that is not an http(s) URL;
* ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (``cross-site``, ``same-site``, any
  unknown value), whatever ``Origin`` says.

A request with neither ``Origin`` nor ``Referer`` (nor ``Sec-Fetch-Site``) is not from a browser —
every current browser sends ``Origin`` on every request that is not ``GET``/``HEAD`` — but from
tallymark's SDK, comet_ml, curl: rule 2 lets it through, rules 3 and 4 still apply.

**Rule 3: REST writes take only their declared content types.** An unsafe request under
``/api/v1`` must send the ``Content-Type`` its route declares (:func:`declared_types`):
``application/x-tallymark-batch`` for ``…/batch/binary``, ``application/octet-stream`` for asset
uploads and ``PUT /blobs/{sha256}``, ``application/json`` for every other route. Refused with 415:

* ``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data`` — the types a
  browser sends cross-site without asking — on every route (none declares them), an empty body
  included (an empty ``text/plain`` form approved a request before this rule);
* any other type a route does not declare, and more than one ``Content-Type`` header;
* a body (``Content-Length`` above 0, or ``Transfer-Encoding``) without a ``Content-Type``: the
  shape of a ``no-cors`` ``fetch`` of raw bytes. A request without a body needs no type.

Why: a browser sends any other type only after a CORS preflight, which this server never answers
(see rule 5), so rule 3 holds even for a browser that sent neither ``Origin`` nor ``Referer``.

**Rule 4: Comet adapter writes carry the API key header.** An unsafe request under
``/clientlib``, ``/api/rest/v2`` or ``/clientlib/rest/v2`` must have a non-empty
``Authorization`` header: comet_ml sends ``COMET_API_KEY`` there on every request (its sessions set
it once, ``comet_ml/connection/http_session.py``); an HTML form or a ``no-cors`` fetch cannot set
it. Refused with 403 in Comet's error shape, so a notebook prints one readable ``COMET ERROR``.
(Whether the key is *valid* is the authentication's business, not this module's.)

**Rule 5: no CORS.** The server sends no ``Access-Control-Allow-*`` header on any answer, preflight
included, so no other origin may read an answer or send a non-simple request. There is no setting
to turn CORS on; if one is added it must list origins and never answer ``*`` with credentials.

**Cookie sessions (not yet).** Today no request is authenticated by a cookie, so rules 2–3 are the
whole defence and the UI needs no token: its only writes (Approve/Reject in ``registry.js``) are
same-origin ``fetch`` calls with ``Content-Type: application/json``, which pass. When login adds a
session cookie, every unsafe request authenticated *by the cookie* must also carry a CSRF token,
``X-Tallymark-CSRF`` (or a ``csrf`` form field for plain HTML forms): ``HMAC-SHA256(server secret,
"csrf:" + session id)``, rendered into the page by the server and compared in constant time, so it
is bound to the session, dies with it, and needs no storage. Requests authenticated by an API key
(``Authorization``) need no token: a browser never attaches one by itself.

Everything fails closed: a header that cannot be parsed, duplicated headers and unknown
``Sec-Fetch-Site`` values are refused rather than guessed at, since a guess is exactly what an
attacker shapes a request around. Each refusal is one sentence saying what was refused, why and
what to do, and is logged once (header values quoted, never the ``Authorization`` header).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CrossSiteMiddleware", "Policy", "Refusal", "check", "declared_types"]

log = logging.getLogger("tallymark.server")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
REST_ROOT = "/api/v1"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# REST routes whose body is not JSON (also measured separately by limits.py); every other REST
# write is JSON. tests/test_cross_site.py checks this against the OpenAPI of every route.
_RAW_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/api/v1/experiments/[^/]+/batch/binary"), "application/x-tallymark-batch"),
    (re.compile(r"/api/v1/experiments/[^/]+/assets"), "application/octet-stream"),
    (re.compile(r"/api/v1/blobs/(?!missing$)[^/]+"), "application/octet-stream"),
    # an endpoint's prediction-log chunk (Arrow IPC bytes; server/routes/predictions.py)
    (re.compile(r"/api/v1/workspaces/[^/]+/endpoints/[^/]+/predictions"), "application/octet-stream"),
)

Origin = tuple[str, str, int]  # scheme, lower-case host (IPv6 without brackets), port


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Policy:
    """What :func:`check` needs to know about the server: built once from its settings."""

    loopback_only: bool
    public_origin: Origin | None
    comet_roots: tuple[str, ...] = ()
    auth: bool = False  # a comet write without a key is then unauthenticated (401), not only suspect

    @classmethod
    def from_settings(cls, settings: Any, comet_roots: tuple[str, ...] = ()) -> Policy:
        origin = _parse_origin(settings.public_url, exact=False)
        return cls(bool(settings.loopback_only), origin, comet_roots, bool(getattr(settings, "auth", False)))


def declared_types(path: str) -> tuple[str, ...]:
    """The content types a REST write to ``path`` accepts."""
    for pattern, media_type in _RAW_ROUTES:
        if pattern.fullmatch(path):
            return (media_type,)
    return ("application/json",)


def check(
    policy: Policy, method: str, path: str, scheme: str, headers: Iterable[tuple[str, str]]
) -> Refusal | None:
    """The refusal for this request, or None when it may reach the routes.

    ``headers``: (lower-case name, value) pairs as received; ``scheme``: of the connection
    (``http``/``https``, ``ws``/``wss`` for a WebSocket handshake, as uvicorn reports it).
    """
    seen: dict[str, list[str]] = {}
    for name, value in headers:
        seen.setdefault(name, []).append(value.strip())
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)

    hosts = seen.get("host", [])
    host = _parse_host(hosts[0], scheme) if len(hosts) == 1 else None
    if policy.loopback_only:
        refusal = _check_host(policy, hosts, host)
        if refusal is not None:
            return refusal
    if method.upper() in SAFE_METHODS:
        return None
    own = {o for o in (host, policy.public_origin) if o is not None}
    refusal = _check_origin(own, seen)
    if refusal is not None:
        return refusal
    if method == "WEBSOCKET":
        return None
    if path == REST_ROOT or path.startswith(REST_ROOT + "/"):
        return _check_content_type(path, seen)
    if any(path == r or path.startswith(r + "/") for r in policy.comet_roots):
        if not any(v for v in seen.get("authorization", [])):
            if policy.auth:
                return Refusal(
                    401,
                    "unauthenticated",
                    "a write to the Comet adapter needs a tallymark API key in the Authorization header: "
                    "set COMET_API_KEY to your tallymark key",
                )
            return Refusal(
                403,
                "forbidden",
                "a write to the Comet adapter must carry the API key in the Authorization header (comet_ml "
                "sends COMET_API_KEY there; a web page cannot), so this one was refused as a possible "
                "cross-site request: set COMET_API_KEY",
            )
    return None


def _check_host(policy: Policy, hosts: list[str], host: Origin | None) -> Refusal | None:
    where = "localhost, 127.0.0.1 or [::1]"
    if policy.public_origin is not None and not _is_loopback(policy.public_origin[1]):
        where += f" or {_show_host(policy.public_origin[1])}"
    tail = (
        f"this server runs without authentication and answers only requests addressed to {where} "
        "(a defence against DNS rebinding); to reach it under another name, give that URL as --public-url"
    )
    if len(hosts) != 1:
        got = "no Host header" if not hosts else f"{len(hosts)} Host headers"
        return Refusal(421, "misdirected", f"the request has {got}: {tail}")
    if host is None:
        return Refusal(421, "misdirected", f"the Host header {hosts[0]!r} is not a host name: {tail}")
    allowed = _is_loopback(host[1]) or (
        policy.public_origin is not None and host[1] == policy.public_origin[1]
    )
    if not allowed:
        return Refusal(421, "misdirected", f"the request was addressed to {hosts[0]!r}: {tail}")
    return None


def _check_origin(own: set[Origin], seen: dict[str, list[str]]) -> Refusal | None:
    fetch_site = seen.get("sec-fetch-site", [])
    if fetch_site and (len(fetch_site) != 1 or fetch_site[0].lower() not in ("same-origin", "none")):
        shown = ", ".join(repr(v) for v in fetch_site)
        return _cross_site(f"the browser marked it Sec-Fetch-Site {shown}")
    origins = seen.get("origin", [])
    if origins:
        if len(origins) != 1:
            return _cross_site(f"it carries {len(origins)} Origin headers")
        if origins[0] == "null":
            return _cross_site(
                "it carries Origin: null (a sandboxed frame, a data: or no-referrer page, a redirect)"
            )
        origin = _parse_origin(origins[0], exact=True)
        if origin is None or origin not in own:
            return _cross_site(f"it comes from {origins[0]!r}, not from this server's own origin")
        return None
    referers = seen.get("referer", [])
    if referers:
        origin = _parse_origin(referers[0], exact=False) if len(referers) == 1 else None
        if origin is None or origin not in own:
            return _cross_site("its Referer is another site's page (or not an http(s) URL)")
    return None


def _cross_site(why: str) -> Refusal:
    return Refusal(
        403,
        "cross_site",
        f"refused as a cross-site request: {why}. Writes are accepted from this server's own pages and "
        "from clients that send no Origin (the SDK, comet_ml, curl)",
    )


def _check_content_type(path: str, seen: dict[str, list[str]]) -> Refusal | None:
    declared = declared_types(path)
    want = " or ".join(declared)
    types = seen.get("content-type", [])
    if len(types) > 1:
        return Refusal(
            415,
            "unsupported_media_type",
            f"the request has {len(types)} Content-Type headers; send one: {want}",
        )
    if not types:
        length = seen.get("content-length", ["0"])
        if "transfer-encoding" in seen or any(v != "0" for v in length):
            return Refusal(
                415, "unsupported_media_type", f"the request has a body but no Content-Type; send {want}"
            )
        return None
    media_type = types[0].split(";", 1)[0].strip().lower()
    if media_type in declared:
        return None
    why = (
        " (the type of an HTML form, which any web site can make a browser send)"
        if media_type in FORM_TYPES
        else ""
    )
    return Refusal(
        415, "unsupported_media_type", f"this route accepts Content-Type {want}, not {types[0]!r}{why}"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# A Host header: a DNS name or IPv4 literal, or a bracketed IPv6 literal, then an optional port.
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")


def _parse_host(value: str, scheme: str) -> Origin | None:
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    port = int(match[2]) if match[2] else _DEFAULT_PORTS.get(scheme, 80)
    if not 0 < port < 65536:
        return None
    return (scheme, match[1].strip("[]").lower(), port)


def _parse_origin(value: str, exact: bool) -> Origin | None:
    """``scheme://host[:port]`` of an http(s) URL; with ``exact``, nothing else may follow it."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if exact and (parts.path or parts.query or parts.fragment or value.endswith(("?", "#"))):
        return None
    return (scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class CrossSiteMiddleware:
    """Applies :func:`check` to every HTTP request and WebSocket handshake before the app sees it."""

    def __init__(self, app: Any, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        refusal = check(self.policy, method, scope.get("path", ""), scope.get("scheme", "http"), headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %r: %s", method, scope.get("path", ""), refusal.message)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
            return
        await _respond(send, refusal, self._comet(scope.get("path", "")))

    def _comet(self, path: str) -> bool:
        return any(path == r or path.startswith(r + "/") for r in self.policy.comet_roots)


async def _respond(send: Send, refusal: Refusal, comet: bool) -> None:
    error = {"code": refusal.code, "message": refusal.message, "detail": None}
    if comet:  # Comet's shape (server/compat/comet/http.py): the SDK prints ``msg`` as one line
        from tallymark.server.compat.comet.translate import BACKEND_CUSTOM_ERROR

        payload: dict[str, Any] = {
            "msg": f"tallymark: {refusal.message}",
            "code": refusal.status,
            "sdk_error_code": BACKEND_CUSTOM_ERROR,
            "error": error,
        }
    else:
        payload = {"error": error}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
