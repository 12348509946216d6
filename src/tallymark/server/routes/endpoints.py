"""Endpoints (deployed model versions) and trusted model versions.

Routes only: each declares its operation and hands the caller to :mod:`tallymark.service.endpoints`,
which checks and audits. Starting and stopping the endpoint *process* is the client's job (the SDK
or the CLI, on the machine that serves); the store only keeps the row the process reports to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, reply
from tallymark.service import endpoints
from tallymark.service.endpoints import EndpointIn, EndpointStatusIn, TrustIn

router = APIRouter(tags=["endpoints"])
EP = "/workspaces/{workspace}/endpoints"


@router.get(EP, dependencies=[need("endpoint.list")])
def list_endpoints(
    workspace: str,
    store: StoreDep,
    caller: CallerDep,
    include_deleted: Annotated[bool, Query()] = False,
) -> TallyJSON:
    return reply({"endpoints": endpoints.list_endpoints(store, caller, workspace, include_deleted)})


@router.post(EP, status_code=201, dependencies=[need("endpoint.create")])
def create_endpoint(workspace: str, body: EndpointIn, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Record an endpoint (status Creating) for a model version or ``@production``/``@staging``."""
    return reply(endpoints.create_endpoint(store, caller, workspace, body), 201)


@router.get(EP + "/{name}", dependencies=[need("endpoint.get")])
def get_endpoint(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(endpoints.get_endpoint(store, caller, workspace, name))


@router.delete(EP + "/{name}", dependencies=[need("endpoint.delete")])
def delete_endpoint(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Mark it Deleted; its process notices within seconds and exits."""
    return reply(endpoints.delete_endpoint(store, caller, workspace, name))


@router.post(EP + "/{name}/status", dependencies=[need("endpoint.status")])
def endpoint_status(
    workspace: str, name: str, body: EndpointStatusIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    """The endpoint process reports InService (url, port, pid) or Failed (the reason)."""
    return reply(endpoints.endpoint_status(store, caller, workspace, name, body))


@router.post(
    "/workspaces/{workspace}/models/{name}/versions/{version}/trust", dependencies=[need("model.trust")]
)
def trust_model(
    workspace: str, name: str, version: str, body: TrustIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    """Allow a version stored as a pickle to be served (workspace admins; audited)."""
    return reply(endpoints.trust_model(store, caller, workspace, name, version, body))
