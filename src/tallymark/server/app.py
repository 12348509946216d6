"""The FastAPI application factory.

>>> from tallymark.settings import Settings
>>> app = create_app(Settings(home="/tmp/tm-home"))      # doctest: +SKIP

The store is opened (and migrated) when the app starts, closed when it stops; routes reach it via
``request.app.state.store`` and hold no SQL of their own.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallymark import __version__
from tallymark.server.crosssite import CrossSiteMiddleware, Policy
from tallymark.server.limits import LimitsMiddleware
from tallymark.server.request_id import RequestIdMiddleware
from tallymark.service.errors import ServiceError, storage_error
from tallymark.settings import Settings

CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
    507: "disk_full",
}


def _error(status: int, message: str, detail: Any = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code or CODES.get(status, "error"), "message": message, "detail": detail}},
        status_code=status,
    )


def _is_page_navigation(request: Request) -> bool:
    """A browser opening a UI page (not the API, the comet adapter or a script): GET asking for HTML."""
    path = request.url.path
    if request.method != "GET" or path.startswith(("/api/", "/clientlib", "/-/static/", "/login")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for err in exc.errors()[:20]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body",)]
        where = ".".join(loc)
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        details.append({"loc": loc, "message": msg, "type": err.get("type")})
        parts.append(f"{where}: {msg}" if where else msg)
    return "invalid request: " + "; ".join(parts[:3]), details


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if exc.status == 401 and _is_page_navigation(request):
            # A person opening a page without a session: the login form, then back to this page.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        return _error(exc.status, exc.message, exc.detail, exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(exc)
        return _error(422, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such API route"
        return _error(exc.status_code, message)

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def storage(request: Request, exc: Exception) -> JSONResponse:
        # A full disk or a read-only store is a condition of the server, not a bug: 507/503 naming it.
        target = "the database" if isinstance(exc, SQLAlchemyError) else "a file"
        known = storage_error(exc, f"{target} (for {request.method} {request.url.path})")
        if known is None:
            return _error(500, f"internal error: {type(exc).__name__}", code="internal")
        return _error(known.status, known.message, known.detail, known.code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug if seen
        return _error(500, f"internal error: {type(exc).__name__}", code="internal")


class _Later:
    """A route set built on first use (or by :meth:`warm` in the background after start-up).

    The web UI and the comet_ml adapter add ~100 routes whose request models FastAPI compiles when
    they are included; building them lazily keeps them off the server's start-up path, so the REST
    API answers sooner. The sub-app shares the main app's state (store, settings) and error handlers.
    """

    def __init__(self, main: FastAPI, include: Any) -> None:
        self._main = main
        self._include = include
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    def get(self) -> FastAPI:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    sub = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
                    sub.state = self._main.state
                    _install_error_handlers(sub)
                    self._include(sub)
                    self._app = sub
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get()(scope, receive, send)


class _Dispatch:
    """``/api/v1`` and ``/docs`` → the REST app; the comet roots → the adapter; the rest → the UI."""

    def __init__(self, api: FastAPI, comet: _Later, ui: _Later, comet_roots: tuple[str, ...]) -> None:
        self.api, self.comet, self.ui = api, comet, ui
        self.comet_roots = comet_roots
        self.state = api.state  # the store and settings, for code that holds only the outer app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.api(scope, receive, send)  # lifespan: opens and closes the store
            return
        path = scope.get("path", "")
        if path.startswith(("/api/v1/", "/docs")) or path == "/api/v1":
            await self.api(scope, receive, send)
        elif any(path == r or path.startswith(r + "/") for r in self.comet_roots):
            await self.comet(scope, receive, send)
        else:
            await self.ui(scope, receive, send)

    def warm(self) -> None:
        self.comet.get()
        self.ui.get()


def create_app(settings: Settings, user: str = "anonymous", warm_after: float | None = 1.0) -> Any:
    """Build the ASGI app: the REST API, the web UI and the comet_ml adapter, behind the cross-site
    checks (:mod:`tallymark.server.crosssite`) and the body limits.

    ``warm_after``: seconds after start-up to build the UI and adapter routes in the background
    (None: on their first request only).
    """
    from tallymark.server.compat import comet  # the comet_ml SDK's protocol (docs/comet.md)

    dispatch: _Dispatch | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from tallymark.service.store import open_store

        app.state.store = open_store(settings)
        timer = None
        if warm_after is not None and dispatch is not None:
            timer = threading.Timer(warm_after, dispatch.warm)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
            app.state.store.close()

    app = FastAPI(
        title="tallymark",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.user = user
    _install_error_handlers(app)

    from tallymark.server.routes import admin, artifacts, experiments, health, panels, reads, registry

    for module in (health, experiments, reads, artifacts, registry, panels, admin):
        app.include_router(module.router, prefix="/api/v1")
    from tallymark.server.routes import audit as audit_routes  # the audit log (server admins)

    app.include_router(audit_routes.router, prefix="/api/v1")
    from tallymark.server.routes import predictions as prediction_routes  # endpoints' prediction logs

    app.include_router(prediction_routes.router, prefix="/api/v1")

    from tallymark.server.routes import endpoints as endpoint_routes  # deployed models (docs/serving.md)

    app.include_router(endpoint_routes.router, prefix="/api/v1")

    from tallymark.server.routes import jobs as jobs_routes  # processing and training jobs (docs/jobs.md)

    app.include_router(jobs_routes.router, prefix="/api/v1")

    def include_ui(sub: FastAPI) -> None:
        from tallymark.server import ui

        sub.include_router(ui.router)  # the web UI at /

    dispatch = _Dispatch(app, _Later(app, comet.mount), _Later(app, include_ui), comet.ROOTS)
    uploads = ("/assets", *comet.UPLOAD_SUFFIXES)
    limited = LimitsMiddleware(
        dispatch, max_body=settings.max_body_bytes, max_upload=settings.max_asset_bytes, upload_suffix=uploads
    )
    guarded = CrossSiteMiddleware(limited, Policy.from_settings(settings, comet.ROOTS))  # docs/security.md
    return RequestIdMiddleware(guarded)
