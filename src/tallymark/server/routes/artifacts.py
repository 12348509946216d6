"""Artifacts, their versions and the blobs their files live in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tallymark.server.identity import Actor
from tallymark.server.permissions import need
from tallymark.server.routes.deps import StoreDep, TallyJSON, body_chunks, reply
from tallymark.service import artifacts, files
from tallymark.service.models import ArtifactVersionIn, Key

router = APIRouter(tags=["artifacts"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


class ShaList(BaseModel):
    sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=100_000)


@router.post("/blobs/missing", dependencies=[need("authenticated")])
def missing_blobs(body: ShaList, store: StoreDep) -> TallyJSON:
    """Which of these blobs the store lacks: clients upload only those (hash checked before upload)."""
    return reply({"missing": files.missing_blobs(store, body.sha256)})


@router.put("/blobs/{sha256}", status_code=201, dependencies=[need("authenticated")])
async def put_blob(sha256: Sha, request: Request, store: StoreDep) -> TallyJSON:
    """Stream a blob in; it becomes visible only once its bytes hash to ``sha256``."""
    chunks = body_chunks(request)

    def put() -> tuple[str, int]:
        stored = files.store_blob(store, chunks, sha256)
        for _ in chunks:  # already stored: read the rest of the body so the connection stays usable
            pass
        return stored

    sha, size = await run_in_threadpool(put)
    return reply({"sha256": sha, "size": size}, 201)


@router.get("/workspaces/{workspace}/artifacts", dependencies=[need("workspace:viewer")])
def list_artifacts(workspace: str, store: StoreDep) -> TallyJSON:
    return reply({"artifacts": artifacts.list_artifacts(store, workspace)})


@router.post(
    "/workspaces/{workspace}/artifacts/{name}/versions",
    status_code=201,
    dependencies=[need("workspace:member")],
)
def log_version(workspace: str, name: str, body: ArtifactVersionIn, store: StoreDep, who: Actor) -> TallyJSON:
    """Create the next (or the given) version of an artifact from already-uploaded blobs and remote URIs."""
    return reply(artifacts.log_artifact_version(store, workspace, name, body, who), 201)


@router.get("/workspaces/{workspace}/artifacts/{name}/versions", dependencies=[need("workspace:viewer")])
def list_versions(workspace: str, name: str, store: StoreDep) -> TallyJSON:
    return reply({"versions": artifacts.list_versions(store, workspace, name)})


@router.get("/workspaces/{workspace}/artifacts/{name}/resolve", dependencies=[need("workspace:viewer")])
def get_version(
    workspace: str,
    name: str,
    store: StoreDep,
    version_or_alias: Annotated[str | None, Query(max_length=100)] = None,
) -> TallyJSON:
    """A version by number or alias (latest when neither is given). Records nothing."""
    return reply(artifacts.get_artifact_version(store, workspace, name, version_or_alias))


@router.post("/workspaces/{workspace}/artifacts/{name}/consume", dependencies=[need("workspace:member")])
def consume(
    workspace: str,
    name: str,
    store: StoreDep,
    experiment_key: Annotated[Key, Body(embed=True)],
    version_or_alias: Annotated[str | None, Body(embed=True, max_length=100)] = None,
) -> TallyJSON:
    """Fetch a version for an experiment and record that the experiment consumed it (lineage)."""
    return reply(artifacts.consume_artifact_version(store, workspace, name, version_or_alias, experiment_key))


@router.delete(
    "/workspaces/{workspace}/artifacts/{name}/versions/{version}", dependencies=[need("workspace:admin")]
)
def delete_version(workspace: str, name: str, version: str, store: StoreDep) -> TallyJSON:
    return reply(artifacts.delete_artifact_version(store, workspace, name, version))


@router.get("/blobs/{sha256}", dependencies=[need("server:admin")])
def get_blob(sha256: Sha, store: StoreDep) -> Response:
    from fastapi.responses import StreamingResponse

    from tallymark.service.errors import NotFound

    if not store.blobs.has(sha256):
        raise NotFound(f"no blob {sha256}")
    return StreamingResponse(
        store.blobs.iter_bytes(sha256),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(store.blobs.size(sha256)),
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"attachment; filename={sha256}",
        },
    )
