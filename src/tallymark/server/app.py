"""The FastAPI application factory.

>>> from tallymark.settings import Settings
>>> app = create_app(Settings(home="/tmp/tm-home"))      # doctest: +SKIP

The store is opened (and migrated) when the app starts, closed when it stops; routes reach it via
``request.app.state.store`` and hold no SQL of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallymark import __version__
from tallymark.server.limits import LimitsMiddleware
from tallymark.service.errors import ServiceError
from tallymark.settings import Settings

CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def _error(status: int, message: str, detail: Any = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code or CODES.get(status, "error"), "message": message, "detail": detail}},
        status_code=status,
    )


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


def create_app(settings: Settings, user: str = "anonymous") -> Any:
    """Build the ASGI app (FastAPI wrapped in the body-limit middleware)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from tallymark.service.store import open_store

        app.state.store = open_store(settings)
        try:
            yield
        finally:
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

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
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

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug if seen
        return _error(500, f"internal error: {type(exc).__name__}", code="internal")

    from tallymark.server.routes import artifacts, experiments, health, reads, registry

    for module in (health, experiments, reads, artifacts, registry):
        app.include_router(module.router, prefix="/api/v1")
    from tallymark.server import ui
    from tallymark.server.routes import panels

    app.include_router(panels.router, prefix="/api/v1")
    from tallymark.server.compat import comet  # the comet_ml SDK's protocol (docs/comet.md)

    comet.mount(app)  # /clientlib, /api/rest/v2, /clientlib/rest/v2
    app.include_router(ui.router)  # the web UI at /, after the API so it never shadows it
    uploads = ("/assets", *comet.UPLOAD_SUFFIXES)
    return LimitsMiddleware(
        app, max_body=settings.max_body_bytes, max_upload=settings.max_asset_bytes, upload_suffix=uploads
    )
