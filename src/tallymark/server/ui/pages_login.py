"""``/login`` (API-key form), ``/login/link/{token}`` (pre-signed links) and ``/logout``.

The rules live in :mod:`tallymark.service.sessions` and :mod:`tallymark.service.presign`; these
routes only read the form or cookie, call them and answer: a page, or a 303 with the session cookie
(``HttpOnly; SameSite=Lax; Path=/``, ``Secure`` when ``public_url`` is https). Registered before
the workspace pages (``login`` is a reserved first path segment, DESIGN §4).

* ``GET /login[?next=/path]``: the form (a password field, no inline script: the UI's CSP forbids
  it); with a live session, who is logged in and a logout button instead.
* ``POST /login`` (form: ``key``, ``next``): a valid key → 303 to ``next`` (a local path, else
  ``/``) with a new session; otherwise 401 and the form again. Both audited, never the key.
* ``GET /login/link/{token}``: consumes the link → 303 to its path with a session; 403 for a link
  that is not valid for its user, 410 for a used or expired one. ``Cache-Control: no-store`` and
  ``Referrer-Policy: no-referrer``, since the token is in the URL.
* ``POST /logout`` (form field ``csrf`` or header ``X-Tallymark-CSRF``): revokes the session and
  clears the cookie → 303 to ``/login``. With a live session the CSRF token must match (403
  otherwise); without one there is nothing to end and the cookie is just cleared.

:func:`user_badge` renders the header's "who am I" with a logout button from a :class:`Caller`,
for the layout to show once authentication is wired in.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tallymark.server.permissions import need
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import SECURITY_HEADERS, error_page, page
from tallymark.service import presign, sessions
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, ServiceError
from tallymark.service.store import Store

__all__ = ["router", "user_badge"]

router = APIRouter(include_in_schema=False)  # public: these pages are how a caller logs in
MAX_KEY_LENGTH = 200
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _store(request: Request) -> Store:
    return request.app.state.store


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _local(next_path: str | None) -> str:
    """``next_path`` when it is a local path (the link rules: no open redirect), else ``/``."""
    if not next_path:
        return "/"
    try:
        return presign.check_path(next_path)
    except Invalid:
        return "/"


def user_badge(caller: Caller, csrf: str, workspace: str | None = None) -> Markup:
    """The header's user badge: name, role in ``workspace`` (if any) and a logout button."""
    role = caller.role(workspace) if workspace is not None else None
    label = caller.name + (f" · {role}" if role else "") + (" · server admin" if caller.is_admin else "")
    return el(
        "form",
        {"class": "user-badge", "method": "post", "action": "/logout", "id": "user-badge"},
        el("span", {"class": "user"}, label),
        el("input", {"type": "hidden", "name": sessions.CSRF_FIELD, "value": csrf}),
        el("button", {"type": "submit", "class": "small"}, "Log out"),
    )


def _login_page(next_path: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    form = el(
        "form",
        {"class": "login", "method": "post", "action": "/login", "id": "login-form"},
        el("label", {"for": "key"}, "API key"),
        el(
            "input",
            {
                "type": "password",
                "name": "key",
                "id": "key",
                "autocomplete": "off",
                "required": True,
                "maxlength": MAX_KEY_LENGTH,
                "placeholder": "tm_…",
            },
        ),
        el("input", {"type": "hidden", "name": "next", "value": next_path}),
        el("button", {"type": "submit", "class": "primary"}, "Log in"),
    )
    body = [
        el("h1", None, "Log in"),
        el("p", {"class": "error-text", "id": "login-error"}, error) if error else None,
        form,
        el(
            "p",
            {"class": "hint"},
            "Paste an API key (an administrator creates one with ",
            el("code", None, "tallymark admin keys create"),
            "), or open a login link from ",
            el("code", None, "tallymark admin presign"),
            ".",
        ),
    ]
    return page("Log in", [("log in", None)], body, page_id="login", status_code=status_code)


def _with_cookie(store: Store, response: Response, cookie: str, expires_at: int) -> Response:
    from tallymark.service.store import now_ms

    max_age = (expires_at - now_ms()) // 1000
    response.set_cookie(sessions.COOKIE_NAME, cookie, **sessions.cookie_attributes(store, max_age))
    # The session's CSRF token, readable by the UI's own scripts (never by another origin's page),
    # which send it back in X-Tallymark-CSRF on every write (see server/auth.py).
    csrf_attrs = sessions.cookie_attributes(store, max_age) | {"httponly": False, "samesite": "strict"}
    response.set_cookie(sessions.CSRF_COOKIE, sessions.csrf_token(store, cookie), **csrf_attrs)
    return response


def _redirect(path: str, extra: dict[str, str] | None = None) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS | (extra or {}))


@router.get("/login", dependencies=[need("session.login")])
def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 - the form's field name
    store = _store(request)
    session = sessions.open_session(store, request.cookies.get(sessions.COOKIE_NAME))
    if session is None:
        return _login_page(_local(next))
    body = [
        el("h1", None, "Logged in"),
        el(
            "p", {"id": "logged-in-as"}, "You are logged in as ", el("strong", None, session.caller.name), "."
        ),
        user_badge(session.caller, session.csrf),
        el("p", None, el("a", {"href": _local(next)}, "Continue")),
    ]
    return page("Logged in", [("log in", None)], body, page_id="login")


async def _form(request: Request) -> dict[str, str]:
    try:
        form = await request.form(max_files=0, max_fields=10)
    except Exception:  # noqa: BLE001 - a form that does not parse is an empty form here
        return {}
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/login", dependencies=[need("session.login")])
async def login_submit(request: Request) -> Response:
    store = _store(request)
    form = await _form(request)
    key, next_path = form.get("key", "").strip(), _local(form.get("next"))
    if len(key) > MAX_KEY_LENGTH:
        key = ""
    done = await run_in_threadpool(sessions.login_with_key, store, key, request_id=_request_id(request))
    if done is None:
        return _login_page(
            next_path,
            "That key is not valid (mistyped, expired or revoked, or its user is disabled).",
            status_code=401,
        )
    cookie, session = done
    return _with_cookie(store, _redirect(next_path), cookie, session.expires_at)


@router.get("/login/link/{token}", dependencies=[need("link.use")])
def login_link_page(token: str, request: Request) -> Response:
    """What the link is for, and a button that uses it: a GET never uses a link up (a chat tool's
    preview of the URL, a prefetch, a crawler would otherwise burn the single use)."""
    store = _store(request)
    try:
        seen = presign.peek_link(store, token)
    except ServiceError as exc:
        resp = error_page(exc.status, exc.message, [("log in", "/login")])
        resp.headers.update(_NO_STORE)
        return resp
    body = [
        el("h1", None, "Log in"),
        el("p", None, "This link logs ", el("strong", None, seen["user"]), " into tallymark, once."),
        el(
            "form",
            {"method": "post", "action": f"/login/link/{token}", "id": "link-form"},
            el("button", {"type": "submit"}, f"Continue as {seen['user']}"),
        ),
    ]
    resp = page("Log in", [("log in", None)], body, page_id="login")
    # The token is in this page's URL: never sent to another site, but sent with the page's own
    # POST (a no-referrer page makes the browser send Origin: null, which crosssite.py refuses).
    resp.headers.update(_NO_STORE | {"Referrer-Policy": "same-origin"})
    return resp


@router.post("/login/link/{token}", dependencies=[need("link.use")])
def login_link(token: str, request: Request) -> Response:
    store = _store(request)
    try:
        done = presign.open_link(store, token, _request_id(request))
    except ServiceError as exc:
        resp = error_page(exc.status, exc.message, [("log in", "/login")])
        resp.headers.update(_NO_STORE)
        return resp
    return _with_cookie(store, _redirect(done.path, _NO_STORE), done.cookie, done.expires_at)


@router.post("/logout", dependencies=[need("session.logout")])
async def logout(request: Request) -> Response:
    store = _store(request)
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    form = await _form(request)
    presented = request.headers.get(sessions.CSRF_HEADER) or form.get(sessions.CSRF_FIELD)
    session = await run_in_threadpool(sessions.open_session, store, cookie)
    if session is not None:
        if not sessions.check_csrf(session, presented):
            return error_page(403, "logging out needs this page's CSRF token: reload the page and try again")
        await run_in_threadpool(sessions.revoke_session, store, cookie, _request_id(request))
    resp = _redirect("/login")
    attrs: dict[str, Any] = sessions.cookie_attributes(store, 0)
    kept = {k: v for k, v in attrs.items() if k != "max_age"}
    resp.delete_cookie(sessions.COOKIE_NAME, **kept)
    resp.delete_cookie(sessions.CSRF_COOKIE, **(kept | {"httponly": False, "samesite": "strict"}))
    return resp
