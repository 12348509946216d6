"""HTTP plumbing shared by the Comet routes: the JSON response class, errors in Comet's shape, routers.

- Comet's SDK parses a JSON answer only when ``Content-Type`` is exactly ``application/json`` (a
  ``; charset=…`` suffix makes it fail), so every answer goes through :class:`CometJSON`.
- Errors are answered in Comet's shape, ``{"msg", "code", "sdk_error_code"}`` (plus tallymark's own
  ``error`` object); with ``sdk_error_code`` 7777777 the SDK prints ``msg`` as is, so a refusal reaches
  the notebook's output as one readable ``COMET ERROR`` line.
- Every route is on one of two routers: ``clientlib`` (mounted at ``/clientlib``) and ``rest``
  (mounted at both ``/api/rest/v2`` and ``/clientlib/rest/v2``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallymark import jsonvalue
from tallymark.server.compat.comet.translate import BACKEND_CUSTOM_ERROR, Refused
from tallymark.service.caller import Caller
from tallymark.service.errors import ServiceError, storage_error
from tallymark.service.store import Store
from tallymark.storable import MAX_DEPTH


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class CometJSON(Response):
    """JSON with ``Content-Type: application/json`` exactly (no charset: the SDK compares strings)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(_plain(content), separators=(",", ":"), ensure_ascii=False, default=str).encode()

    def init_headers(self, headers: Any = None) -> None:
        super().init_headers(headers)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
        self.raw_headers.append((b"content-type", b"application/json"))


def ok(content: Any = None, status: int = 200) -> CometJSON:
    return CometJSON({} if content is None else content, status_code=status)


class CometError(Exception):
    """An answer in Comet's error shape: ``status``, a message for people and an ``sdk_error_code``."""

    def __init__(self, status: int, message: str, sdk_error_code: int = BACKEND_CUSTOM_ERROR) -> None:
        super().__init__(message)
        self.status, self.message, self.sdk_error_code = status, message, sdk_error_code


_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    503: "read_only",
    507: "disk_full",
}


def error_response(status: int, message: str, sdk_error_code: int = BACKEND_CUSTOM_ERROR) -> CometJSON:
    msg = f"tallymark: {message}"
    return CometJSON(
        {
            "msg": msg,
            "code": status,
            "sdk_error_code": sdk_error_code,
            "error": {"code": _CODES.get(status, "invalid"), "message": message, "detail": None},
        },
        status_code=status,
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts)


class CometRoute(APIRoute):
    """A route whose errors are answered in Comet's error shape (never tallymark's plain one)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def comet_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except CometError as exc:
                return error_response(exc.status, exc.message, exc.sdk_error_code)
            except ServiceError as exc:
                return error_response(exc.status, exc.message)
            except Refused as exc:
                return error_response(400, str(exc))
            except RequestValidationError as exc:
                return error_response(422, _validation_message(exc))
            except StarletteHTTPException as exc:
                message = exc.detail if isinstance(exc.detail, str) else "request failed"
                return error_response(exc.status_code, message)
            except (SQLAlchemyError, OSError) as exc:
                # A full disk or read-only store: 507/503 naming it, never a 500 (else re-raised).
                target = "the database" if isinstance(exc, SQLAlchemyError) else "a file"
                known = storage_error(exc, f"{target} (for {request.method} {request.url.path})")
                if known is None:
                    raise
                return error_response(known.status, known.message)

        return comet_handler


def router() -> APIRouter:
    return APIRouter(route_class=CometRoute, include_in_schema=False)


def fallback_router() -> APIRouter:
    """A catch-all answering every other path under the Comet roots with a Comet-shaped 404."""
    fallback = router()

    @fallback.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def not_supported(request: Request) -> Response:
        what = f"{request.method} {request.url.path}"
        raise CometError(404, f"the Comet endpoint {what} is not supported (see docs/comet.md)")

    return fallback


def store_of(request: Request) -> Store:
    return request.app.state.store


def caller_of(request: Request) -> Caller:
    """The request's caller for the service layer (the key's user; the local admin on --no-auth)."""
    from tallymark.server.auth import require_caller

    return require_caller(request)


def actor_of(request: Request) -> str:
    """Who is asking: the server's identity seam (the Comet API key is not a user until auth lands)."""
    from tallymark.server.identity import actor

    return actor(request)


async def json_body(request: Request) -> Any:
    """The request's JSON body (the SDK sends ``application/json;charset=utf-8``, often gzip)."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return jsonvalue.parse(raw, MAX_DEPTH, "the request body")
    except jsonvalue.TooDeep as exc:
        raise CometError(400, str(exc)) from None
    except ValueError:
        raise CometError(400, "the request body is not JSON") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise CometError(400, "the request body must be a JSON object")
    return body


def unsupported(what: str, hint: str = "") -> CometError:
    """A clear 4xx for a Comet call tallymark does not implement (see docs/comet.md)."""
    text = f"{what} is not supported by tallymark's Comet adapter"
    return CometError(400, text + (f"; {hint}" if hint else "") + " (see docs/comet.md)")
