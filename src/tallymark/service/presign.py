"""Pre-signed login links: a URL that logs one user into the UI once, shortly, and lands on a page.

``tallymark admin presign --user U [--workspace WS] [--path /WS/PROJECT] [--expires 5m]
[--session 12h]`` prints ``{public_url}/login/link/{token}``. Opening it (``GET``) consumes the link,
sets a session cookie (:mod:`tallymark.service.sessions`) and redirects (303) to the link's path.

Token format (version 1)::

    token   = "tml1." + b64url(payload) + "." + b64url(mac)          (b64url: RFC 4648 §5, no "=")
    payload = UTF-8 JSON, keys sorted, no spaces:
              {"exp": ms, "iat": ms, "id": "<32 hex>", "path": "/…", "sess": ms, "uid": int,
               "user": "<name>", "ws": "<workspace>" | null}
    mac     = HMAC-SHA256(server secret, "tallymark-login-link-v1\\n" + b64url(payload))

``exp``/``iat`` are ms since the epoch (UTC), ``sess`` the session lifetime in ms, ``id`` 16 random
bytes. The server secret is the file of :mod:`tallymark.service.secret` (``Settings.secret_path``),
never the database. Every issued link is also a ``login_links`` row (id, user, path, lifetimes,
who issued it, ``used_at``).

Rules (:func:`issue_link` refuses with 422/404/409, :func:`open_link` with 403/410):

* **Lifetimes.** A link is valid 5 s – 5 min after issue (default 5 min); the session it opens
  lasts 30 min – 12 h (default 12 h). At the instant ``exp`` equals now the link is expired.
* **Signed.** A token whose MAC does not verify (one character changed anywhere, another server's
  secret), that is malformed or longer than 4096 characters, is refused (403) before anything is
  looked up.
* **Bound to the user.** The signed user id and name must be the ``login_links`` row's and an
  existing, enabled user's: a validly signed token whose fields differ from what was issued (a link
  for another user, another path, another lifetime) is refused (403), as is a link of a user
  disabled since.
* **Single use.** ``used_at`` is set by ``UPDATE … WHERE used_at IS NULL`` in the transaction that
  creates the session, so of two openings at the same moment exactly one logs in; every later one
  answers 410 Gone. An expired link answers 410 too.
* **Local paths only** (no open redirect, :func:`check_path`): the path starts with one ``/``, has
  no scheme or host (``//evil``, ``/\\evil``, ``https://…`` refused), no backslash, no ``.``/``..``
  segment, only printable ASCII (percent-encode the rest), no ``%``-escape of ``/``, ``\\`` or a
  control character, at most 2000 characters. With ``--workspace``, the user must be a member of it
  and the path must lie inside it (default path: the workspace's page, else ``/``).

Audit (in the transaction of the change): ``link.issue`` (actor: the issuing admin),
``link.use`` and ``session.login`` (actor: the user), ``link.replay`` and ``link.expired`` (actor
``anonymous``, object the link), ``session.login_failed`` for every other refusal (reason only).
The token itself is never logged, audited or stored: the audit payload hash covers the link's
fields, and the row holds only the id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tallymark.service import audit, guard
from tallymark.service.apikeys import parse_duration
from tallymark.service.caller import Caller, require_server_admin
from tallymark.service.errors import Conflict, Invalid, NotFound, ServiceError
from tallymark.service.memberships import roles_of
from tallymark.service.secret import load_or_create_secret
from tallymark.service.sessions import check_lifetime, insert_session
from tallymark.service.store import Store, now_ms
from tallymark.service.users import user_row
from tallymark.store.schema import login_links, users

__all__ = [
    "IssuedLink",
    "LinkGone",
    "LinkLogin",
    "LinkRefused",
    "check_path",
    "issue_link",
    "open_link",
    "sign",
]

log = logging.getLogger(__name__)

VERSION = "tml1"
DOMAIN = b"tallymark-login-link-v1\n"
MIN_LINK_MS = 5_000
MAX_LINK_MS = DEFAULT_LINK_MS = 5 * 60_000
MAX_TOKEN_LENGTH = 4096
MAX_PATH_LENGTH = 2000
_TOKEN_RE = re.compile(r"tml1\.([A-Za-z0-9_-]{1,4000})\.([A-Za-z0-9_-]{43})")
_PATH_CHARS = re.compile(r"[\x21-\x7e]+")
_BAD_ESCAPE = re.compile(r"%(?:2f|5c|[01][0-9a-f]|7f)", re.IGNORECASE)


class LinkRefused(ServiceError):
    """Not a link this server issued for this user (tampered, malformed, another user's, disabled)."""

    status = 403
    code = "link_refused"


class LinkGone(ServiceError):
    """A real link that can no longer be used: used already, or expired."""

    status = 410
    code = "gone"


@dataclass(frozen=True)
class IssuedLink:
    url: str = field(repr=False)  # holds the token: a credential until it is used
    link_id: str
    user: str
    path: str
    expires_at: int
    session_ms: int


@dataclass(frozen=True)
class LinkLogin:
    """What opening a link produced: the session cookie to set and where to go."""

    cookie: str = field(repr=False)
    session_id: int
    expires_at: int
    path: str
    user: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload_b64: str) -> bytes:
    return hmac.new(secret, DOMAIN + payload_b64.encode("ascii"), hashlib.sha256).digest()


def sign(secret: bytes, payload: dict[str, Any]) -> str:
    """The token of ``payload`` (see the module docstring; tests build expired links with it)."""
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{VERSION}.{body}.{_b64(_mac(secret, body))}"


def check_path(path: str, workspace: str | None = None) -> str:
    """``path`` if a link may land there (a local path, see the module docstring), else Invalid."""
    from urllib.parse import urlsplit

    def refuse(why: str) -> Invalid:
        return Invalid(f"--path {path!r} {why}: give a path of this server, e.g. /risk/fraud")

    if not isinstance(path, str) or not path.startswith("/"):
        raise refuse("does not start with /")
    if len(path) > MAX_PATH_LENGTH:
        raise refuse(f"is longer than {MAX_PATH_LENGTH} characters")
    if not _PATH_CHARS.fullmatch(path):
        raise refuse("has spaces, control or non-ASCII characters (percent-encode them)")
    if path.startswith("//") or "\\" in path:
        raise refuse("could be read as another host (// or a backslash)")
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        raise refuse("names a scheme or host")
    if _BAD_ESCAPE.search(path):
        raise refuse("percent-encodes a slash, backslash or control character")
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        raise refuse("has a . or .. segment")
    if workspace is not None:
        base = _workspace_path(workspace)
        if parts.path != base and not parts.path.startswith(base + "/"):
            raise refuse(f"is not inside workspace {workspace!r} ({base})")
    return path


def _workspace_path(workspace: str) -> str:
    """The UI page of a workspace, quoted as the UI quotes it (tallymark.server.ui.urls)."""
    from urllib.parse import quote

    return "/" + quote(workspace, safe="")


def _range(text: str, low: int, high: int, what: str) -> int:
    ms = parse_duration(text)
    if not low <= ms <= high:
        raise Invalid(what)
    return ms


def issue_link(
    store: Store,
    caller: Caller,
    user: str,
    workspace: str | None = None,
    path: str | None = None,
    expires: str = "5m",
    session: str = "12h",
) -> IssuedLink:
    """Issue a single-use login link for ``user`` (server admins only; audited ``link.issue``)."""
    require_server_admin(caller, "issuing a login link")
    link_ms = _range(
        expires, MIN_LINK_MS, MAX_LINK_MS, "a login link is valid from 5s to 5m (e.g. --expires 2m)"
    )
    session_ms = check_lifetime(
        _range(session, 1, 10**12, "a session lasts from 30m to 12h (e.g. --session 8h)")
    )
    if path is None:
        path = _workspace_path(workspace) if workspace is not None else "/"
    check_path(path, workspace)
    secret = load_or_create_secret(store.settings.secret_file)
    link_id = secrets.token_hex(16)
    with guard.write(store, caller, "link.issue", workspace=workspace, object=("login_link", link_id)) as w:
        conn = w.conn
        u = user_row(conn, user)
        if u.disabled_at is not None:
            raise Conflict(f"user {user!r} is disabled: a link for them would not log in")
        if workspace is not None:
            from tallymark.service.workspaces import workspace_row

            workspace_row(conn, workspace)
            if workspace not in roles_of(conn, u.id)[0]:
                raise NotFound(
                    f"{user!r} is no member of workspace {workspace!r}; give them a role first with "
                    f"`tallymark admin members add {workspace} {user} --role member`"
                )
        now = now_ms()
        row = {
            "id": link_id,
            "user_id": u.id,
            "workspace": workspace,
            "path": path,
            "issued_at": now,
            "issued_by": caller.name,
            "expires_at": now + link_ms,
            "session_ms": session_ms,
        }
        conn.execute(login_links.insert().values(**row))
        w.payload = {"user": u.name, "path": path, "expires_at": now + link_ms, "session_ms": session_ms}
    payload = {
        "exp": now + link_ms,
        "iat": now,
        "id": link_id,
        "path": path,
        "sess": session_ms,
        "uid": u.id,
        "user": u.name,
        "ws": workspace,
    }
    url = f"{store.settings.public_url.rstrip('/')}/login/link/{sign(secret, payload)}"
    return IssuedLink(url, link_id, u.name, path, now + link_ms, session_ms)


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "exp": int,
    "iat": int,
    "id": str,
    "path": str,
    "sess": int,
    "uid": int,
    "user": str,
    "ws": (str, type(None)),
}


def _verified_payload(secret: bytes, token: str) -> dict[str, Any] | None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        return None
    try:
        mac, body = _unb64(m[2]), _unb64(m[1])
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling: the last base64 character carries unused bits, and a token that
    # differs from the issued one in any character must not log in.
    if _b64(mac) != m[2] or _b64(body) != m[1] or not hmac.compare_digest(mac, _mac(secret, m[1])):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or set(payload) != set(_FIELDS):
        return None
    ok = all(isinstance(payload[k], t) and not isinstance(payload[k], bool) for k, t in _FIELDS.items())
    return payload if ok else None


def peek_link(store: Store, token: str) -> dict[str, Any]:
    """Who a link would log in and where (``user``, ``path``), or the refusal :func:`open_link` would
    give — reading only: opening a link's URL (a GET, which a chat tool's link preview also makes)
    changes nothing; the page it shows asks for a click that POSTs the token to :func:`open_link`.
    Nothing is audited here; the POST audits every outcome."""
    secret = load_or_create_secret(store.settings.secret_file)
    payload = _verified_payload(secret, token)
    if payload is None:
        raise LinkRefused(
            "this login link is not valid (altered, incomplete, or made by another server): "
            "ask your administrator for a new one"
        )
    with store.db.read() as conn:
        link = conn.execute(select(login_links).where(login_links.c.id == payload["id"])).first()
    if link is None or link.user_id != payload["uid"] or link.path != payload["path"]:
        raise LinkRefused("this login link was not issued for this user: ask for a new one")
    if link.used_at is not None:
        raise LinkGone("this login link was used already: each link logs in once; ask for a new one")
    if link.expires_at <= now_ms():
        raise LinkGone("this login link has expired (links last at most 5 minutes): ask for a new one")
    return {"user": payload["user"], "path": link.path, "workspace": link.workspace}


def open_link(store: Store, token: str, request_id: str | None = None) -> LinkLogin:
    """Consume a link: a session for its user, or :class:`LinkRefused` (403) / :class:`LinkGone` (410).

    Every outcome is audited, refusals included: the entry is committed before the error is raised.
    """
    secret = load_or_create_secret(store.settings.secret_file)
    payload = _verified_payload(secret, token)
    with store.db.write() as conn:
        outcome = _consume(conn, payload, request_id)
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


def _consume(conn: Any, payload: dict[str, Any] | None, request_id: str | None) -> LinkLogin | ServiceError:
    """The link's session, or the refusal to raise once the audit entry is committed."""
    # Every path appends an entry: take the chain's lock first, before any row lock (audit.lock),
    # which also queues concurrent openings of one link behind each other on PostgreSQL.
    audit.lock(conn)
    if payload is None:
        log.warning("refused a login link that is malformed or not signed by this server's secret")
        _failed(conn, "link not signed by this server", request_id)
        return LinkRefused(
            "this login link is not valid (altered, incomplete, or made by another server): "
            "ask your administrator for a new one"
        )
    link = conn.execute(select(login_links).where(login_links.c.id == payload["id"])).first()
    u = conn.execute(select(users).where(users.c.id == payload["uid"])).first()
    fields = ("uid", "path", "exp", "sess", "ws")
    issued = link is not None and (
        link.user_id,
        link.path,
        link.expires_at,
        link.session_ms,
        link.workspace,
    ) == tuple(payload[k] for k in fields)
    if link is None or not issued or u is None or u.name != payload["user"]:
        _failed(conn, "link fields differ from the issued link", request_id)
        return LinkRefused("this login link was not issued for this user: ask for a new one")
    if u.disabled_at is not None:
        _failed(conn, "user disabled", request_id)
        return LinkRefused(f"user {u.name!r} is disabled: this link no longer logs in")
    now = now_ms()
    ref = ("login_link", link.id)
    if link.used_at is not None:
        audit.append(conn, "anonymous", "link.replay", ref, link.workspace, {"user": u.name}, request_id)
        return LinkGone("this login link was used already: each link logs in once; ask for a new one")
    if link.expires_at <= now:
        audit.append(conn, "anonymous", "link.expired", ref, link.workspace, {"user": u.name}, request_id)
        return LinkGone("this login link has expired (links last at most 5 minutes): ask for a new one")
    claimed = conn.execute(
        login_links.update()
        .where(login_links.c.id == link.id, login_links.c.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if not claimed:  # pragma: no cover - the lock above serialises openings; kept for safety
        audit.append(conn, "anonymous", "link.replay", ref, link.workspace, {"user": u.name}, request_id)
        return LinkGone("this login link was used already: each link logs in once; ask for a new one")
    cookie, sid, expires = insert_session(conn, u.id, link.session_ms, "link", link_id=link.id)
    audit.append(conn, u.name, "link.use", ref, link.workspace, {"session_id": sid}, request_id)
    how = {"method": "link", "link_id": link.id, "session_id": sid, "expires_at": expires}
    audit.append(conn, u.name, "session.login", ("user", u.name), None, how, request_id)
    return LinkLogin(cookie, sid, expires, link.path, u.name)


def _failed(conn: Any, reason: str, request_id: str | None) -> None:
    audit.append(
        conn,
        "anonymous",
        "session.login_failed",
        ("session", "link login"),
        None,
        {"reason": reason},
        request_id,
    )
