"""Jobs: submit, read, follow the log, stop; the routes a job's runner reports through (docs/jobs.md).

Each route declares its operation and hands the caller to :mod:`tallymark.service.jobs`, which
checks it again and audits writes. A job's log is bytes: appended and read back as base64 in JSON
(``data_b64``), with the chunk's number (``seq``) and, when read, the position to ask from next.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, reply
from tallymark.service import jobs
from tallymark.service.errors import Invalid

router = APIRouter(tags=["jobs"])
JSONBody = Annotated[dict[str, Any], Body()]
BASE = "/workspaces/{workspace}/jobs"


@router.post(BASE, status_code=201, dependencies=[need("job.create")])
def create_job(workspace: str, body: JSONBody, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(jobs.create_job(store, caller, workspace, body), 201)


@router.get(BASE, dependencies=[need("job.list")])
def list_jobs(
    workspace: str,
    store: StoreDep,
    caller: CallerDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TallyJSON:
    return reply({"jobs": jobs.list_jobs(store, caller, workspace, status, limit)})


@router.get(BASE + "/{name}", dependencies=[need("job.get")])
def get_job(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(jobs.get_job(store, caller, workspace, name))


@router.post(BASE + "/{name}/status", dependencies=[need("job.status")])
def report_status(workspace: str, name: str, body: JSONBody, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(jobs.report_status(store, caller, workspace, name, body))


@router.post(BASE + "/{name}/logs", dependencies=[need("job.log")])
def append_log(workspace: str, name: str, body: JSONBody, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """One chunk of the job's output: ``{"seq": N, "attempt": A, "data_b64": "..."}``."""
    try:
        data = base64.b64decode(body["data_b64"], validate=True)
        seq, attempt = body["seq"], body.get("attempt", 1)
    except (KeyError, TypeError, ValueError):
        raise Invalid('a log chunk is {"seq": N, "attempt": A, "data_b64": BASE64}') from None
    return reply(jobs.log_job(store, caller, workspace, name, seq, attempt, data))


@router.get(BASE + "/{name}/logs", dependencies=[need("job.get")])
def read_logs(
    workspace: str,
    name: str,
    store: StoreDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=-1, lt=2**31)] = -1,
) -> TallyJSON:
    out = jobs.job_logs_read(store, caller, workspace, name, after)
    out["data_b64"] = base64.b64encode(out.pop("data")).decode("ascii")
    return reply(out)


@router.post(BASE + "/{name}/links", dependencies=[need("job.link")])
def link_job(workspace: str, name: str, body: JSONBody, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(jobs.link_job(store, caller, workspace, name, body))


@router.post(BASE + "/{name}/stop", dependencies=[need("job.stop")])
def stop_job(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(jobs.stop_job(store, caller, workspace, name))
