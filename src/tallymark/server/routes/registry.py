"""Logged models, the model registry, status requests and approvals, lineage.

Each route declares its operation (:mod:`tallymark.service.operations`) and hands the request's
caller to the service function, which checks it again and audits writes; the four-eyes rule (an
approver who is not the requester) is the registry's, with the name from the key or session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tallymark.server.permissions import need
from tallymark.server.routes.artifacts import bytes_response
from tallymark.server.routes.deps import CallerDep, IdPath, KeyPath, StoreDep, TallyJSON, reply
from tallymark.service import lineage, registry
from tallymark.service.models import DecisionIn, ModelIn, RegisterIn, StatusRequestIn

router = APIRouter(tags=["models"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


@router.post("/experiments/{key}/models", status_code=201, dependencies=[need("model.log")])
def log_model(key: KeyPath, body: ModelIn, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(registry.log_model(store, caller, key, body), 201)


@router.get("/experiments/{key}/models", dependencies=[need("model.logged")])
def logged_models(key: KeyPath, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"models": registry.list_logged_models(store, caller, key)})


@router.get("/workspaces/{workspace}/models", dependencies=[need("model.list")])
def list_models(workspace: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"models": registry.list_models(store, caller, workspace)})


@router.post(
    "/workspaces/{workspace}/models/{name}/versions", status_code=201, dependencies=[need("model.register")]
)
def register(workspace: str, name: str, body: RegisterIn, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(registry.register_model(store, caller, workspace, name, body), 201)


@router.get("/workspaces/{workspace}/models/{name}", dependencies=[need("model.get")])
def get_model(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(registry.get_model(store, caller, workspace, name))


@router.get("/workspaces/{workspace}/models/{name}/versions/{version}", dependencies=[need("model.get")])
def get_version(workspace: str, name: str, version: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(registry.get_version(store, caller, workspace, name, version))


@router.get(
    "/workspaces/{workspace}/models/{name}/versions/{version}/blobs/{sha256}",
    dependencies=[need("model.get")],
)
def version_file(
    workspace: str, name: str, version: str, sha256: Sha, store: StoreDep, caller: CallerDep
) -> Response:
    """The bytes of one file of a model version (by its sha256), for whoever may read the version."""
    size, chunks = registry.model_file(store, caller, workspace, name, version, sha256)
    return bytes_response(size, chunks, sha256)


@router.get(
    "/workspaces/{workspace}/models/{name}/versions/{version}/inputs", dependencies=[need("model.get")]
)
def training_inputs(workspace: str, name: str, version: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """The artifact versions (with file hashes) upstream of this model version."""
    return reply({"inputs": registry.training_inputs(store, caller, workspace, name, version)})


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/status", dependencies=[need("model.set_status")]
)
def set_status(
    workspace: str, name: str, version: str, body: StatusRequestIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    """Change status directly (not to production: that is a request another person approves)."""
    return reply(registry.set_status(store, caller, workspace, name, version, body))


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/tags", dependencies=[need("model.tag")]
)
def add_tag(
    workspace: str,
    name: str,
    version: str,
    store: StoreDep,
    caller: CallerDep,
    tag: Annotated[str, Query(min_length=1, max_length=500)],
) -> TallyJSON:
    return reply(registry.add_tag(store, caller, workspace, name, version, tag))


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/requests",
    status_code=201,
    dependencies=[need("model.request")],
)
def request_status(
    workspace: str, name: str, version: str, body: StatusRequestIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    return reply(registry.request_status(store, caller, workspace, name, version, body), 201)


@router.get("/workspaces/{workspace}/models/{name}/requests", dependencies=[need("request.list")])
def list_requests(
    workspace: str,
    name: str,
    store: StoreDep,
    caller: CallerDep,
    state: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = None,
) -> TallyJSON:
    return reply({"requests": registry.list_requests(store, caller, workspace, name, state)})


@router.post("/requests/{request_id}/approve", dependencies=[need("request.approve")])
def approve(
    request_id: IdPath, store: StoreDep, caller: CallerDep, body: DecisionIn | None = None
) -> TallyJSON:
    return reply(registry.decide(store, caller, request_id, True, body))


@router.post("/requests/{request_id}/reject", dependencies=[need("request.reject")])
def reject(
    request_id: IdPath, store: StoreDep, caller: CallerDep, body: DecisionIn | None = None
) -> TallyJSON:
    return reply(registry.decide(store, caller, request_id, False, body))


@router.get("/lineage", dependencies=[need("lineage.get")])
def get_lineage(
    store: StoreDep,
    caller: CallerDep,
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
    """The graph around a node: only nodes of workspaces where the caller has a role."""
    return reply(lineage.get_lineage(store, caller, node, direction, depth))
