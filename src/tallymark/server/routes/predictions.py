"""An endpoint's prediction log over REST: chunks shipped from its spool, ground truth, reading back.

The chunk route takes the Arrow IPC bytes as ``application/octet-stream`` (so the JSON-depth check
of :mod:`tallymark.server.limits` leaves them alone) with the chunk's key in the query; reading
answers ``application/vnd.apache.arrow.stream`` when asked for it (``Accept`` or ``format=arrow``),
else JSON pages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, reply
from tallymark.service import predictions
from tallymark.service.models import Strict

router = APIRouter(tags=["predictions"])
ARROW = "application/vnd.apache.arrow.stream"
BASE = "/workspaces/{workspace}/endpoints/{name}"


class GroundTruthIn(Strict):
    ids: list[Any] = Field(max_length=predictions.MAX_LABELS + 1)
    labels: list[Any] = Field(max_length=predictions.MAX_LABELS + 1)


@router.post(
    f"{BASE}/predictions",
    status_code=201,
    dependencies=[need("prediction.log")],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def log_predictions(
    workspace: str,
    name: str,
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    spool_id: Annotated[str, Query(max_length=32)],
    seq: Annotated[int, Query(ge=0, le=(1 << 62) - 1)],
    rows: Annotated[int, Query(ge=1, le=predictions.MAX_CHUNK_ROWS)],
    first_at: Annotated[int, Query(ge=0, le=(1 << 62) - 1)],
    last_at: Annotated[int, Query(ge=0, le=(1 << 62) - 1)],
) -> TallyJSON:
    """One chunk of the endpoint's prediction log (an Arrow IPC stream); idempotent by (spool_id, seq)."""
    data = await request.body()
    out = await run_in_threadpool(
        predictions.log_chunk,
        store,
        caller,
        workspace,
        name,
        spool_id=spool_id,
        seq=seq,
        rows=rows,
        first_at=first_at,
        last_at=last_at,
        data=data,
    )
    return reply(out, 201 if out["stored"] else 200)


@router.post(f"{BASE}/ground-truth", dependencies=[need("prediction.label")])
def log_ground_truth(
    workspace: str, name: str, body: GroundTruthIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    """Labels by row id ("REQUEST_ID:ROW", a bare id is row 0); at most 100,000 per call."""
    return reply(predictions.log_ground_truth(store, caller, workspace, name, body.ids, body.labels))


@router.get(f"{BASE}/predictions", dependencies=[need("prediction.read")], response_model=None)
def read_predictions(
    workspace: str,
    name: str,
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    since_ms: Annotated[int | None, Query(ge=0, le=(1 << 62) - 1)] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=(1 << 62) - 1)] = None,
    with_labels: bool = True,
    format: Annotated[str | None, Query(pattern="^(arrow|json)$")] = None,  # noqa: A002 - the query name
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=predictions.MAX_PAGE)] = 1000,
) -> Response:
    """The logged predictions (labels joined): Arrow IPC when asked for, else one JSON page."""
    arrow = format == "arrow" or (format is None and ARROW in request.headers.get("accept", ""))
    if not arrow:
        return reply(
            predictions.predictions_page(
                store, caller, workspace, name, since_ms, until_ms, with_labels, offset, limit
            )
        )
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    table = predictions.read_predictions(store, caller, workspace, name, since_ms, until_ms, with_labels)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return Response(
        sink.getvalue().to_pybytes(), media_type=ARROW, headers={"X-Content-Type-Options": "nosniff"}
    )
