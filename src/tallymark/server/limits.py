"""Request-body limits and gzip decoding, as a pure ASGI middleware.

Bodies are counted as they stream in; one that grows past its limit (after decompression, so a
gzip bomb is stopped after at most ``limit`` bytes of output) is answered 413 before any route runs
or, for streamed uploads, before anything becomes visible.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException

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
        limit = self.max_upload if scope["path"].endswith(self.upload_suffix) else self.max_body
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
        except (BodyTooLarge, BadGzip) as exc:
            # Normally the app's exception handler answers; this covers errors outside a route.
            if not started:
                await _respond(send, exc.status_code, _error_body(str(exc.detail)))


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
