"""Reads: workspaces, projects, experiment lists and queries, summaries, histories, items, assets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, IdPath, KeyPath, StoreDep, TallyJSON, reply
from tallymark.service import assets, experiments, reads
from tallymark.service.assets import SAFE_INLINE
from tallymark.service.models import ItemKind

router = APIRouter(tags=["reads"])


@router.get("/workspaces", dependencies=[need("workspace.list")])
def list_workspaces(store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"workspaces": experiments.list_workspaces(store, caller)})


@router.get("/workspaces/{workspace}/projects", dependencies=[need("project.list")])
def list_projects(workspace: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"projects": experiments.list_projects(store, caller, workspace)})


@router.get("/experiments", dependencies=[need("experiment.query")])
def query_experiments(
    store: StoreDep,
    caller: CallerDep,
    workspace: Annotated[str, Query(min_length=1, max_length=200)],
    project: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=4096, description="query language filter")] = None,
    sort: Annotated[str, Query(max_length=600)] = "-created_at",
    page: Annotated[int, Query(ge=1, le=10**15, description="1-based; page × per_page fits in 64 bits")] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TallyJSON:
    """A page of experiments, filtered with the query language and sorted (``-`` = descending)."""
    return reply(reads.query_experiments(store, caller, workspace, project, q, sort, page, per_page))


@router.get("/experiments/{key}", dependencies=[need("experiment.get")])
def get_experiment(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(experiments.get_experiment(store, caller, key))


@router.get("/experiments/{key}/params", dependencies=[need("experiment.read")])
def get_params(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"params": reads.parameters_summary(store, caller, key)})


@router.get("/experiments/{key}/others", dependencies=[need("experiment.read")])
def get_others(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"others": reads.others_summary(store, caller, key)})


@router.get("/experiments/{key}/tags", dependencies=[need("experiment.read")])
def get_tags(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"tags": reads.get_tags(store, caller, key)})


@router.get("/experiments/{key}/metrics", dependencies=[need("experiment.read")])
def get_metrics_summary(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"metrics": reads.metrics_summary(store, caller, key)})


@router.get("/experiments/{key}/metric", dependencies=[need("metric.read")])
def get_metric(
    key: KeyPath,
    store: StoreDep,
    caller: CallerDep,
    name: Annotated[str, Query(min_length=1, max_length=500)],
    points: Annotated[int | None, Query(ge=3, le=100_000, description="downsample (LTTB) to N")] = None,
) -> TallyJSON:
    """One metric's points ordered by step; non-finite values are the strings NaN/Infinity/-Infinity."""
    return reply(reads.metric_history(store, caller, key, name, points))


class ManySeries(BaseModel):
    keys: list[str] = Field(min_length=1, max_length=1000)
    name: str = Field(min_length=1, max_length=500)
    points: int | None = Field(default=None, ge=3, le=100_000)


@router.post("/metrics/series", dependencies=[need("metric.read")])
def many_series(body: ManySeries, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """One metric for many experiments in one call (compare views), optionally downsampled."""
    return reply(reads.metric_histories(store, caller, body.keys, body.name, body.points))


@router.get("/experiments/{key}/items", dependencies=[need("experiment.read")])
def get_items(
    key: KeyPath,
    store: StoreDep,
    caller: CallerDep,
    kind: ItemKind,
    name: Annotated[str | None, Query(max_length=500)] = None,
) -> TallyJSON:
    return reply({"items": reads.get_items(store, caller, key, kind, name)})


@router.get("/experiments/{key}/assets", dependencies=[need("asset.list")])
def list_assets(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"assets": assets.list_assets(store, caller, key)})


@router.get("/experiments/{key}/assets/{asset_id}/content", dependencies=[need("asset.read")])
def asset_content(key: KeyPath, asset_id: IdPath, store: StoreDep, caller: CallerDep) -> StreamingResponse:
    """The asset's bytes. Only inert types are served inline; everything else is an attachment."""
    a, body = assets.asset_chunks(store, caller, key, asset_id)
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
    return StreamingResponse(body, media_type=ctype, headers=headers)
