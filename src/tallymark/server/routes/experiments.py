"""Writes: create experiments, apply batches, upload assets, end."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from tallymark import jsonvalue
from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, KeyPath, StoreDep, TallyJSON, body_chunks, reply
from tallymark.service import assets, batch, experiments
from tallymark.service.errors import Invalid
from tallymark.service.models import AssetMeta, BatchIn, ExperimentCreate
from tallymark.storable import MAX_DEPTH

router = APIRouter(tags=["experiments"])


@router.post("/experiments", status_code=201, dependencies=[need("experiment.create")])
def create_experiment(body: ExperimentCreate, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Create an experiment under a client-generated key (idempotent for the same key)."""
    return reply(experiments.create_experiment(store, caller, body), 201)


@router.post("/experiments/{key}/batch", dependencies=[need("experiment.log")])
def apply_batch(key: KeyPath, body: BatchIn, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Params, metric columns, others, tags and items in one transaction, once per batch_id."""
    return reply(batch.apply_batch(store, caller, key, body))


@router.post(
    "/experiments/{key}/batch/binary",
    dependencies=[need("experiment.log")],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-tallymark-batch": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def apply_binary_batch(key: KeyPath, request: Request, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """The same batch with metric columns as raw little-endian arrays (the SDK's fast path)."""
    from tallymark.server.binary_batch import decode

    body = await request.body()
    head, series = decode(body)
    return reply(await run_in_threadpool(batch.apply_batch, store, caller, key, head, series))


@router.post("/experiments/{key}/end", dependencies=[need("experiment.end")])
def end_experiment(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(experiments.end_experiment(store, caller, key))


@router.post("/experiments/{key}/assets", status_code=201, dependencies=[need("asset.add")])
async def upload_asset(
    key: KeyPath,
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    meta: Annotated[str, Query(description="JSON: file_name, step, metadata, upload_id, sha256")],
) -> TallyJSON:
    """Stream the request body into the blob store as an asset of the experiment."""
    try:
        parsed = AssetMeta.model_validate(jsonvalue.parse(meta, MAX_DEPTH, "meta"))
    except (ValueError, ValidationError) as exc:
        raise Invalid(f"meta is not valid: {exc}") from None
    chunks = body_chunks(request)

    def add() -> dict[str, Any]:
        stored = assets.add_asset(store, caller, key, parsed, chunks)
        for _ in chunks:  # a replayed upload or a known blob: read the rest so the connection stays usable
            pass
        return stored

    return reply(await run_in_threadpool(add), 201)
