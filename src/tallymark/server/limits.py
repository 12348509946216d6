"""Request-body limits and gzip decoding, as a pure ASGI middleware.

Bodies are counted as they stream in; one that grows past its limit (after decompression, so a
gzip bomb is stopped after at most ``limit`` bytes of output) is answered 413 before any route runs
or, for streamed uploads, before anything becomes visible.

Every body that may be parsed as JSON (all but uploads, multipart forms and the binary batch, whose
header is checked by :mod:`tallymark.server.binary_batch`) is also measured for nesting depth before
the route sees it: deeper than :data:`tallymark.storable.MAX_DEPTH` (64) levels is answered 400, so
no JSON parser downstream (FastAPI's, the Comet adapter's) ever recurses into a hostile body.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException

from tallymark import jsonvalue
from tallymark.storable import MAX_DEPTH

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing passes it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than the limit of {limit:,} bytes (after decompression)"
        )


class BadGzip(HTTPException):
    def __init__(self, reason: str) -> None:
        super().__init__(400, f"the gzip body cannot be decoded: {reason}")


class BodyTooDeep(HTTPException):
    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


# Bodies that are not JSON: their bytes may hold any brackets.
_NOT_JSON_TYPES = ("multipart/", "application/octet-stream", "application/x-tallymark-batch")


def _json_like(path: str, content_type: str, upload: bool) -> bool:
    raw = path.endswith("/batch/binary") or ("/blobs/" in path and not path.endswith("/blobs/missing"))
    return not (upload or raw or content_type.startswith(_NOT_JSON_TYPES))


def _error_body(message: str, code: str = "too_large") -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "detail": None}}).encode()


class LimitsMiddleware:
    def __init__(
        self, app: Any, max_body: int, max_upload: int, upload_suffix: str | tuple[str, ...] = "/assets"
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.upload_suffix = upload_suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        upload = scope["path"].endswith(self.upload_suffix)
        limit = self.max_upload if upload else self.max_body
        check_depth = _json_like(scope["path"], headers.get("content-type", "").strip().lower(), upload)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            await _respond(
                send,
                415,
                _error_body(
                    f"Content-Encoding {encoding!r} is not supported; use gzip", "unsupported_encoding"
                ),
            )
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _respond(
                send,
                413,
                _error_body(f"the request body is {int(length):,} bytes; the limit is {limit:,} bytes"),
            )
            return
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        seen = 0
        started = False

        async def limited_receive() -> Message:
            if not check_depth:
                return await next_part()
            return await whole_body()

        async def whole_body() -> Message:
            # The route reads all of a JSON body before parsing it anyway; hand it over in one piece,
            # measured first.
            nonlocal check_depth
            parts = []
            while True:
                message = await next_part()
                if message["type"] != "http.request":
                    return message
                parts.append(message["body"])
                if not message.get("more_body", False):
                    break
            check_depth = False
            body = b"".join(parts)
            try:
                jsonvalue.check_depth(body, MAX_DEPTH, "the request body")
            except jsonvalue.TooDeep as exc:
                raise BodyTooDeep(str(exc)) from None
            return {"type": "http.request", "body": body, "more_body": False}

        async def next_part() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            if inflater is not None:
                try:
                    out = inflater.decompress(body, limit - seen + 1)
                    if inflater.unconsumed_tail:
                        raise BodyTooLarge(limit)
                    if not message.get("more_body", False):
                        out += inflater.flush()
                        if not inflater.eof:
                            raise zlib.error("truncated gzip stream")
                except zlib.error as exc:
                    raise BadGzip(str(exc)) from None
                body = out
            seen += len(body)
            if seen > limit:
                raise BodyTooLarge(limit)
            return {**message, "body": body}

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if inflater is not None:
            scope = dict(scope)
            scope["headers"] = [
                (k, v)
                for k, v in scope["headers"]
                if k.lower() not in (b"content-encoding", b"content-length")
            ]
        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BadGzip, BodyTooDeep) as exc:
            # Normally the app's exception handler answers; this covers errors outside a route.
            if not started:
                code = "too_large" if exc.status_code == 413 else "bad_request"
                await _respond(send, exc.status_code, _error_body(str(exc.detail), code))


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
