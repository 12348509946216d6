"""A small HTTP/1.1 server on asyncio, for the endpoint process only.

Why not uvicorn: its ASGI layer costs more than the model does (a trivial ASGI app on uvicorn with
h11, the only parser installed here, answered a small POST in 0.20 ms p50 on a reused connection;
this server 0.03 ms, same machine, same load; the endpoint's whole budget for a 5-row request is
0.5 ms), and it leaves Nagle's algorithm on for accepted sockets with several workers (uvicorn
#3149, DESIGN §6). An endpoint answers small JSON or CSV requests on keep-alive
connections, so this server does exactly that and nothing else:

- request line + headers up to :data:`MAX_HEAD` bytes (else 431), ``Content-Length`` or
  ``Transfer-Encoding: chunked`` bodies up to ``max_body`` (else 413, before the body is read:
  ``Expect: 100-continue`` is answered only when the body fits), pipelined requests in order;
- keep-alive by default (HTTP/1.1) or on request (HTTP/1.0), ``Connection: close`` honoured;
- TCP_NODELAY on every accepted socket;
- a malformed request gets 400 and the connection is closed (the stream can no longer be framed);
- the handler runs inline: it must be quick (a predict on one core) and must not raise — whatever
  it raises anyway becomes a 500 naming the exception type, and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_HEAD", "Request", "Response", "serve"]

MAX_HEAD = 64 * 1024

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


Handler = Callable[[Request], Response]
ErrorBody = Callable[[int, str], Response]


class _Connection(asyncio.Protocol):
    __slots__ = ("_buf", "_closing", "_error_body", "_handler", "_max_body", "_pending", "_transport")

    def __init__(self, handler: Handler, error_body: ErrorBody, max_body: int) -> None:
        self._handler = handler
        self._error_body = error_body
        self._max_body = max_body
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closing = False
        # The head of a request whose body is still arriving: (method, target, version, headers,
        # content length or -1 for chunked, keep-alive)
        self._pending: tuple[str, str, str, dict[str, str], int, bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # A client that sends faster than it reads our answers: stop reading until they are taken.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf += data
        if len(self._buf) > 2 * (self._max_body + MAX_HEAD):  # pipelined bodies beyond any one limit
            self._fail(413, f"more than {2 * self._max_body} bytes of requests waiting on one connection")
            return
        try:
            while not self._closing and self._step():
                pass
        except _BadRequest as exc:
            self._fail(exc.status, exc.message)

    # one request at a time: True when one was handled and more bytes may hold the next
    def _step(self) -> bool:
        if self._pending is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise _BadRequest(431, f"request head larger than {MAX_HEAD} bytes")
                return False
            if end > MAX_HEAD:
                raise _BadRequest(431, f"request head larger than {MAX_HEAD} bytes")
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            self._pending = self._parse_head(head)
            if self._pending[3].get("expect", "").lower() == "100-continue" and self._transport:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        method, target, version, headers, length, keep = self._pending
        if length >= 0:
            if len(self._buf) < length:
                return False
            body = bytes(self._buf[:length])
            del self._buf[:length]
        else:
            got = self._dechunk()
            if got is None:
                return False
            body = got
        self._pending = None
        path, _, query = target.partition("?")
        self._respond(Request(method, path, query, headers, body), keep)
        return bool(self._buf)

    def _parse_head(self, head: bytes) -> tuple[str, str, str, dict[str, str], int, bool]:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise _BadRequest(400, "request head is not text") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest(505, f"unsupported HTTP version {version[:20]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise _BadRequest(400, "malformed header line")
            key = name.lower()
            value = value.strip()
            if key == "content-length" and key in headers and headers[key] != value:
                raise _BadRequest(400, "conflicting Content-Length headers")
            headers[key] = value
        te = headers.get("transfer-encoding", "").lower()
        if te and te != "chunked":
            raise _BadRequest(501, f"unsupported Transfer-Encoding {te[:40]!r}")
        if te and "content-length" in headers:
            raise _BadRequest(400, "both Content-Length and Transfer-Encoding given")
        if te:
            length = -1
        else:
            raw = headers.get("content-length", "0")
            if not raw.isdigit() or len(raw) > 18:
                raise _BadRequest(400, "malformed Content-Length")
            length = int(raw)
            if length > self._max_body:
                raise _BadRequest(
                    413, f"request body of {length} bytes is larger than the limit of {self._max_body} bytes"
                )
        conn = headers.get("connection", "").lower()
        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        return method.upper(), target, version, headers, length, keep

    def _dechunk(self) -> bytes | None:
        """The whole chunked body when it has arrived (consumed from the buffer), else None."""
        pos, out, buf = 0, bytearray(), self._buf
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 1024:
                    raise _BadRequest(400, "malformed chunk size line")
                return None
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(400, "malformed chunk size") from None
            if size < 0:
                raise _BadRequest(400, "malformed chunk size")
            if len(out) + size > self._max_body:
                raise _BadRequest(413, f"request body larger than the limit of {self._max_body} bytes")
            start = eol + 2
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # the empty line after any trailers (ignored)
                if end < 0:
                    return None
                del buf[: end + 4]
                return bytes(out)
            if len(buf) < start + size + 2:
                return None
            if buf[start + size : start + size + 2] != b"\r\n":
                raise _BadRequest(400, "malformed chunk")
            out += buf[start : start + size]
            pos = start + size + 2

    def _respond(self, req: Request, keep: bool) -> None:
        try:
            resp = self._handler(req)
        except Exception as exc:  # a bug: answer it, keep serving
            resp = self._error_body(500, f"internal error: {type(exc).__name__}")
        self._write(resp, keep, head_only=req.method == "HEAD")

    def _write(self, resp: Response, keep: bool, head_only: bool = False) -> None:
        t = self._transport
        if t is None:
            return
        head = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(resp.body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in resp.headers)
        if not keep:
            head.append("Connection: close")
        t.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else resp.body))
        if not keep:
            self._closing = True
            t.close()

    def _fail(self, status: int, message: str) -> None:
        self._write(self._error_body(status, message), keep=False)


async def serve(
    handler: Handler,
    error_body: ErrorBody,
    host: str,
    port: int,
    max_body: int,
    *,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Start serving ``handler`` on ``host:port`` (port 0: a free one; see ``server.sockets``)."""
    loop = asyncio.get_running_loop()

    def factory() -> _Connection:
        return _Connection(handler, error_body, max_body)

    kw: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
    return await loop.create_server(factory, backlog=1024, reuse_address=True, **kw)
