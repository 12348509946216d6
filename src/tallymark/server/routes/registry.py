"""Logged models, the model registry, status requests and approvals, lineage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tallymark.server.identity import Actor
from tallymark.server.permissions import need
from tallymark.server.routes.deps import IdPath, KeyPath, StoreDep, TallyJSON, reply
from tallymark.service import lineage, registry
from tallymark.service.models import DecisionIn, ModelIn, RegisterIn, StatusRequestIn

router = APIRouter(tags=["models"])


@router.post("/experiments/{key}/models", status_code=201, dependencies=[need("workspace:member")])
def log_model(key: KeyPath, body: ModelIn, store: StoreDep) -> TallyJSON:
    return reply(registry.log_model(store, key, body), 201)


@router.get("/experiments/{key}/models", dependencies=[need("workspace:viewer")])
def logged_models(key: KeyPath, store: StoreDep) -> TallyJSON:
    return reply({"models": registry.list_logged_models(store, key)})


@router.get("/workspaces/{workspace}/models", dependencies=[need("workspace:viewer")])
def list_models(workspace: str, store: StoreDep) -> TallyJSON:
    return reply({"models": registry.list_models(store, workspace)})


@router.post(
    "/workspaces/{workspace}/models/{name}/versions", status_code=201, dependencies=[need("workspace:member")]
)
def register(workspace: str, name: str, body: RegisterIn, store: StoreDep, who: Actor) -> TallyJSON:
    return reply(registry.register_model(store, workspace, name, body, who), 201)


@router.get("/workspaces/{workspace}/models/{name}", dependencies=[need("workspace:viewer")])
def get_model(workspace: str, name: str, store: StoreDep) -> TallyJSON:
    return reply(registry.get_model(store, workspace, name))


@router.get(
    "/workspaces/{workspace}/models/{name}/versions/{version}", dependencies=[need("workspace:viewer")]
)
def get_version(workspace: str, name: str, version: str, store: StoreDep) -> TallyJSON:
    return reply(registry.get_version(store, workspace, name, version))


@router.get(
    "/workspaces/{workspace}/models/{name}/versions/{version}/inputs", dependencies=[need("workspace:viewer")]
)
def training_inputs(workspace: str, name: str, version: str, store: StoreDep) -> TallyJSON:
    """The artifact versions (with file hashes) upstream of this model version."""
    return reply({"inputs": registry.training_inputs(store, workspace, name, version)})


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/status", dependencies=[need("workspace:member")]
)
def set_status(
    workspace: str, name: str, version: str, body: StatusRequestIn, store: StoreDep, who: Actor
) -> TallyJSON:
    """Change status directly (not to production: that is a request another person approves)."""
    return reply(registry.set_status(store, workspace, name, version, body, who))


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/tags", dependencies=[need("workspace:member")]
)
def add_tag(
    workspace: str,
    name: str,
    version: str,
    store: StoreDep,
    tag: Annotated[str, Query(min_length=1, max_length=500)],
) -> TallyJSON:
    return reply(registry.add_tag(store, workspace, name, version, tag))


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/requests",
    status_code=201,
    dependencies=[need("workspace:member")],
)
def request_status(
    workspace: str, name: str, version: str, body: StatusRequestIn, store: StoreDep, who: Actor
) -> TallyJSON:
    return reply(registry.request_status(store, workspace, name, version, body, who), 201)


@router.get("/workspaces/{workspace}/models/{name}/requests", dependencies=[need("workspace:viewer")])
def list_requests(
    workspace: str,
    name: str,
    store: StoreDep,
    state: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = None,
) -> TallyJSON:
    return reply({"requests": registry.list_requests(store, workspace, name, state)})


@router.post("/requests/{request_id}/approve", dependencies=[need("workspace:member", approver=True)])
def approve(request_id: IdPath, store: StoreDep, who: Actor, body: DecisionIn | None = None) -> TallyJSON:
    return reply(registry.decide(store, request_id, True, body, who))


@router.post("/requests/{request_id}/reject", dependencies=[need("workspace:member", approver=True)])
def reject(request_id: IdPath, store: StoreDep, who: Actor, body: DecisionIn | None = None) -> TallyJSON:
    return reply(registry.decide(store, request_id, False, body, who))


@router.get("/lineage", dependencies=[need("workspace:viewer")])
def get_lineage(
    store: StoreDep,
    node: Annotated[
        str,
        Query(
            min_length=3,
            max_length=1200,
            description="experiment:KEY, artifact:WS/NAME:VERSION or model:WS/NAME:VERSION",
        ),
    ],
    direction: Annotated[str, Query(pattern="^(upstream|downstream|both)$")] = "both",
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
) -> TallyJSON:
    return reply(lineage.get_lineage(store, node, direction, depth))
