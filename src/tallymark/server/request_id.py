"""Every request gets an id: the client's ``X-Request-Id`` when it is a sane token, else a new one.

The id is answered in the response's ``X-Request-Id`` header, travels on the request's
:class:`~tallymark.service.caller.Caller` and is written into each audit entry the request makes,
so an auditor can match an entry to a client's log line (and a user can quote it to an admin).
A pure ASGI middleware, outermost, so refusals answered before the routes carry it too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCOPE_KEY = "tallymark.request_id"
HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,64}\Z")


def request_id_of(scope: Mapping[str, Any]) -> str | None:
    """The id of the request in ``scope`` (None outside the middleware, e.g. in-process calls)."""
    return scope.get(SCOPE_KEY)


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope.get("headers", ()) if k == HEADER]
        rid = sent[0].decode("ascii") if len(sent) == 1 and _SANE.match(sent[0]) else uuid.uuid4().hex
        scope[SCOPE_KEY] = rid
        scope.setdefault("state", {})["request_id"] = rid  # request.state.request_id for the routes

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode("ascii"))]}
            await send(message)

        await self.app(scope, receive, send_with_id)
