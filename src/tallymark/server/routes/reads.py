"""Reads: workspaces, projects, experiment lists and queries, summaries, histories, items, assets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tallymark.server.permissions import need, visible_workspaces
from tallymark.server.routes.deps import IdPath, KeyPath, StoreDep, TallyJSON, reply
from tallymark.service import assets, experiments, reads
from tallymark.service.assets import SAFE_INLINE
from tallymark.service.models import ItemKind

router = APIRouter(tags=["reads"])


@router.get("/workspaces", dependencies=[need("authenticated")])
def list_workspaces(store: StoreDep, request: Request) -> TallyJSON:
    return reply({"workspaces": visible_workspaces(request, experiments.list_workspaces(store))})


@router.get("/workspaces/{workspace}/projects", dependencies=[need("workspace:viewer")])
def list_projects(workspace: str, store: StoreDep) -> TallyJSON:
    return reply({"projects": experiments.list_projects(store, workspace)})


@router.get("/experiments", dependencies=[need("workspace:viewer")])
def query_experiments(
    store: StoreDep,
    workspace: Annotated[str, Query(min_length=1, max_length=200)],
    project: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=4096, description="query language filter")] = None,
    sort: Annotated[str, Query(max_length=600)] = "-created_at",
    page: Annotated[int, Query(ge=1, le=10**15, description="1-based; page × per_page fits in 64 bits")] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TallyJSON:
    """A page of experiments, filtered with the query language and sorted (``-`` = descending)."""
    return reply(reads.query_experiments(store, workspace, project, q, sort, page, per_page))


@router.get("/experiments/{key}", dependencies=[need("workspace:viewer")])
def get_experiment(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply(experiments.get_experiment(store, key))


@router.get("/experiments/{key}/params", dependencies=[need("workspace:viewer")])
def get_params(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"params": reads.parameters_summary(store, key)})


@router.get("/experiments/{key}/others", dependencies=[need("workspace:viewer")])
def get_others(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"others": reads.others_summary(store, key)})


@router.get("/experiments/{key}/tags", dependencies=[need("workspace:viewer")])
def get_tags(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"tags": reads.get_tags(store, key)})


@router.get("/experiments/{key}/metrics", dependencies=[need("workspace:viewer")])
def get_metrics_summary(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"metrics": reads.metrics_summary(store, key)})


@router.get("/experiments/{key}/metric", dependencies=[need("workspace:viewer")])
def get_metric(
    key: KeyPath,
    store: StoreDep,
    name: Annotated[str, Query(min_length=1, max_length=500)],
    points: Annotated[int | None, Query(ge=3, le=100_000, description="downsample (LTTB) to N")] = None,
) -> TallyJSON:
    """One metric's points ordered by step; non-finite values are the strings NaN/Infinity/-Infinity."""
    return reply(reads.metric_history(store, key, name, points))


class ManySeries(BaseModel):
    keys: list[str] = Field(min_length=1, max_length=1000)
    name: str = Field(min_length=1, max_length=500)
    points: int | None = Field(default=None, ge=3, le=100_000)


@router.post("/metrics/series", dependencies=[need("workspace:member")])
def many_series(body: ManySeries, store: StoreDep) -> TallyJSON:
    """One metric for many experiments in one call (compare views), optionally downsampled."""
    return reply(reads.metric_histories(store, body.keys, body.name, body.points))


@router.get("/experiments/{key}/items", dependencies=[need("workspace:viewer")])
def get_items(
    key: KeyPath, store: StoreDep, kind: ItemKind, name: Annotated[str | None, Query(max_length=500)] = None
) -> TallyJSON:
    return reply({"items": reads.get_items(store, key, kind, name)})


@router.get("/experiments/{key}/assets", dependencies=[need("workspace:viewer")])
def list_assets(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"assets": assets.list_assets(store, key)})


@router.get("/experiments/{key}/assets/{asset_id}/content", dependencies=[need("workspace:viewer")])
def asset_content(key: KeyPath, asset_id: IdPath, store: StoreDep) -> StreamingResponse:
    """The asset's bytes. Only inert types are served inline; everything else is an attachment."""
    a = assets.get_asset(store, key, asset_id)
    ctype = a["contentType"] if a["contentType"] in SAFE_INLINE else "application/octet-stream"
    from urllib.parse import quote

    disposition = "inline" if ctype != "application/octet-stream" else "attachment"
    fname = a["fileName"].rsplit("/", 1)[-1]
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(fname, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Length": str(a["fileSize"]),
    }
    return StreamingResponse(store.blobs.iter_bytes(a["sha256"]), media_type=ctype, headers=headers)
