"""Artifacts, their versions and the blobs their files live in.

Each route declares its operation (:mod:`tallymark.service.operations`) and hands the request's
caller to the service function, which checks it again and audits writes; nothing else happens here.
Who may learn that a blob is stored is the rule of :mod:`tallymark.service.files`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, body_chunks, reply
from tallymark.service import artifacts, files
from tallymark.service.models import ArtifactVersionIn, Key

router = APIRouter(tags=["artifacts"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


class ShaList(BaseModel):
    sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=100_000)


def bytes_response(size: int, chunks: Iterator[bytes], name: str) -> Response:
    from fastapi.responses import StreamingResponse

    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"attachment; filename={name}",
        },
    )


@router.post("/blobs/missing", dependencies=[need("blob.missing")])
def missing_blobs(body: ShaList, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Which of these blobs the client must upload: those not stored, and those whose owners the caller
    may not read (so the answer says nothing about other workspaces' files)."""
    return reply({"missing": files.missing_blobs(store, caller, body.sha256)})


@router.put("/blobs/{sha256}", status_code=201, dependencies=[need("blob.put")])
async def put_blob(sha256: Sha, request: Request, store: StoreDep, caller: CallerDep) -> TallyJSON:
    """Stream a blob in; it becomes visible only once its bytes hash to ``sha256``."""
    chunks = body_chunks(request)

    def put() -> dict[str, object]:
        stored = files.put_blob(store, caller, chunks, sha256)
        for _ in chunks:  # already stored: read the rest of the body so the connection stays usable
            pass
        return stored

    return reply(await run_in_threadpool(put), 201)


@router.get("/workspaces/{workspace}/artifacts", dependencies=[need("artifact.list")])
def list_artifacts(workspace: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"artifacts": artifacts.list_artifacts(store, caller, workspace)})


@router.post(
    "/workspaces/{workspace}/artifacts/{name}/versions",
    status_code=201,
    dependencies=[need("artifact.log")],
)
def log_version(
    workspace: str, name: str, body: ArtifactVersionIn, store: StoreDep, caller: CallerDep
) -> TallyJSON:
    """Create the next (or the given) version of an artifact from already-uploaded blobs and remote URIs."""
    return reply(artifacts.log_artifact_version(store, caller, workspace, name, body), 201)


@router.get("/workspaces/{workspace}/artifacts/{name}/versions", dependencies=[need("artifact.versions")])
def list_versions(workspace: str, name: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply({"versions": artifacts.list_versions(store, caller, workspace, name)})


@router.get("/workspaces/{workspace}/artifacts/{name}/resolve", dependencies=[need("artifact.get")])
def get_version(
    workspace: str,
    name: str,
    store: StoreDep,
    caller: CallerDep,
    version_or_alias: Annotated[str | None, Query(max_length=100)] = None,
) -> TallyJSON:
    """A version by number or alias (latest when neither is given). Records nothing."""
    return reply(artifacts.get_artifact_version(store, caller, workspace, name, version_or_alias))


@router.get(
    "/workspaces/{workspace}/artifacts/{name}/versions/{version}/blobs/{sha256}",
    dependencies=[need("artifact.get")],
)
def version_file(
    workspace: str, name: str, version: str, sha256: Sha, store: StoreDep, caller: CallerDep
) -> Response:
    """The bytes of one file of a version (by its sha256), for whoever may read the version."""
    size, chunks = artifacts.artifact_file(store, caller, workspace, name, version, sha256)
    return bytes_response(size, chunks, sha256)


@router.post("/workspaces/{workspace}/artifacts/{name}/consume", dependencies=[need("artifact.consume")])
def consume(
    workspace: str,
    name: str,
    store: StoreDep,
    caller: CallerDep,
    experiment_key: Annotated[Key, Body(embed=True)],
    version_or_alias: Annotated[str | None, Body(embed=True, max_length=100)] = None,
) -> TallyJSON:
    """Fetch a version for an experiment and record that the experiment consumed it (lineage)."""
    return reply(
        artifacts.consume_artifact_version(store, caller, workspace, name, version_or_alias, experiment_key)
    )


@router.delete(
    "/workspaces/{workspace}/artifacts/{name}/versions/{version}", dependencies=[need("artifact.delete")]
)
def delete_version(workspace: str, name: str, version: str, store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(artifacts.delete_artifact_version(store, caller, workspace, name, version))


@router.get("/blobs/{sha256}", dependencies=[need("blob.read")])
def get_blob(sha256: Sha, store: StoreDep, caller: CallerDep) -> Response:
    """A blob by hash alone (server admins); others read files through what owns them."""
    size, chunks = files.read_blob(store, caller, sha256)
    return bytes_response(size, chunks, sha256)
