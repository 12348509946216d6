"""Shared route dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse

from tallymark import jsonvalue
from tallymark.server.auth import require_caller
from tallymark.service.caller import Caller
from tallymark.service.models import KEY_PATTERN
from tallymark.service.store import Store
from tallymark.storable import MAX_ID


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]
# Who is calling, for the service layer: the key's or session's user with auth on (401 when
# anonymous), the local admin (X-Tallymark-User, else the server's user) on --no-auth.
CallerDep = Annotated[Caller, Depends(require_caller)]
KeyPath = Annotated[str, Path(pattern=KEY_PATTERN, description="experiment key: 32 lowercase hex")]
# Ids are INTEGER columns (32 bits on PostgreSQL): a bigger one would reach the database driver
# and fail there (a 500), so it is refused here.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id: 1 to 2**31 - 1")]


class TallyJSON(JSONResponse):
    """JSON with tallymark's value rules: NaN/±inf as {"$float": …}, big integers exact."""

    def render(self, content: Any) -> bytes:
        return jsonvalue.dumps(content).encode("utf-8")


def reply(content: Any, status_code: int = 200) -> TallyJSON:
    return TallyJSON(content, status_code=status_code)


def body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a blocking iterator, for service code running in the threadpool:
    each chunk is awaited on the event loop, so uploads stream without being held in memory."""
    import anyio.from_thread

    stream = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        # from_thread.run takes a coroutine function; the end of the stream comes back as None.
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while True:
        data = anyio.from_thread.run(next_chunk)
        if data is None:
            return
        if data:
            yield data
