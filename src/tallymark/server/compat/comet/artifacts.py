"""Artifacts: upsert a version, its files (uploads and remote-asset batches), state, get, files, aliases.

Comet logs an artifact in steps: ``write/artifacts/upsert`` creates the version (tallymark numbers it
and records that the experiment produced it), the files follow one by one (local files as uploads
with ``artifactVersionId``, remote ones in ``write/artifact/assets/remote/batch``), and
``write/artifacts/state`` says ``CLOSED`` when all arrived (``ERROR`` when one failed: the version is
then deleted so nobody consumes a partial version — only by the experiment still uploading it, and
only while nobody consumed it). Once closed, or once its experiment ends, a version's files are final.

Fetching a version for an experiment (``GET artifacts/version?consumerExperimentKey=``) records that
the running experiment consumed it. This is the one GET of tallymark's that writes: comet_ml has no
other call for it, and without it the lineage of every model trained from a Comet artifact would be
lost. It only appends a lineage fact, and only for a request carrying the client's API key header
(which a cross-site page cannot make a browser send).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from tallymark.server.auth import require_caller
from tallymark.server.compat.comet import translate as tr
from tallymark.server.compat.comet.http import (
    CometError,
    json_object,
    ok,
    router,
    store_of,
    unsupported,
)
from tallymark.server.compat.comet.lifecycle import experiment_key
from tallymark.service import artifacts, compat_support, experiments
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound
from tallymark.service.models import KEY_RE
from tallymark.service.store import Store

clientlib = router()
rest = router()


def _upsert(store: Store, caller: Caller, body: dict[str, Any], key: str) -> dict[str, Any]:
    name = body.get("artifactName")
    if not isinstance(name, str) or not name:
        raise CometError(400, "'artifactName' is required")
    workspace = experiments.get_experiment(store, caller, key)["workspace"]
    try:
        previous = artifacts.get_artifact_version(store, caller, workspace, name)["version"]
    except NotFound:
        previous = None
    spec = {
        "artifact_type": body.get("artifactType") or "dataset",
        "version": body.get("version") or None,
        "aliases": list(body.get("alias") or []),
        "version_tags": list(body.get("versionTags") or []),
        "metadata": tr.metadata_in(body.get("versionMetadata")),
        "files": [],
        "experiment_key": key,
    }
    v = artifacts.log_artifact_version(store, caller, workspace, name, spec, open_for_files=True)
    return {
        "artifactId": tr.artifact_id(workspace, name),
        "artifactVersionId": tr.artifact_version_id(workspace, name, v["version"]),
        "currentVersion": v["version"],
        "previousVersion": previous,
    }


@rest.post("/write/artifacts/upsert")
async def upsert(request: Request) -> Any:
    """Create the artifact's next (or the given) version, produced by the experiment."""
    body = await json_object(request)
    key = experiment_key(body)
    return ok(await run_in_threadpool(_upsert, store_of(request), require_caller(request), body, key))


def _state(store: Store, caller: Caller, body: dict[str, Any]) -> None:
    ws, name, version = tr.parse_id("av", body.get("artifactVersionId"), 3)
    key = experiment_key(body)
    state = str(body.get("state") or "").upper()
    if state == "CLOSED":
        artifacts.close_artifact_version(store, caller, ws, name, version, key)
    elif state == "ERROR":
        artifacts.abandon_artifact_version(store, caller, ws, name, version, key)
    else:
        raise CometError(400, f"artifact state {state!r} is not supported (CLOSED or ERROR)")


@rest.post("/write/artifacts/state")
async def state(request: Request) -> Any:
    body = await json_object(request)
    await run_in_threadpool(_state, store_of(request), require_caller(request), body)
    return ok()


def _remote_batch(store: Store, caller: Caller, key: str, requests: list[dict[str, Any]]) -> None:
    by_version: dict[str, list[dict[str, Any]]] = {}
    for r in requests:
        vid = r.get("artifactVersionId")
        link = r.get("link")
        if not isinstance(vid, str) or not isinstance(link, str) or not link:
            raise CometError(400, "every remote asset needs 'artifactVersionId' and 'link'")
        spec = {
            "logical_path": r.get("fileName") or link.rstrip("/").rsplit("/", 1)[-1] or "remote",
            "uri": link,
            "metadata": tr.metadata_in(r.get("metadata")),
        }
        by_version.setdefault(vid, []).append(spec)
    for vid, specs in by_version.items():
        ws, name, version = tr.parse_id("av", vid, 3)
        compat_support.append_artifact_files(store, caller, ws, name, version, specs, key)


@rest.post("/write/artifact/assets/remote/batch")
async def remote_assets(request: Request) -> Any:
    """Remote files (``Artifact.add_remote``) of one or more artifact versions."""
    key = request.query_params.get("experimentKey") or ""
    if not KEY_RE.match(key):
        raise CometError(400, f"experimentKey {key!r} is not a tallymark experiment key")
    body = await json_object(request)
    reqs = body.get("remoteArtifactAssetRequests")
    if not isinstance(reqs, list) or not all(isinstance(r, dict) for r in reqs):
        raise CometError(400, "'remoteArtifactAssetRequests' must be a list of objects")
    await run_in_threadpool(_remote_batch, store_of(request), require_caller(request), key, reqs)
    return ok()


def _name_param(q: dict[str, str]) -> str | None:
    # The SDK quotes the name itself before the query string is encoded: undo the inner quoting.
    raw = q.get("artifactName")
    return unquote(raw) if raw else None


def _find(store: Store, caller: Caller, q: dict[str, str], client: bool = False) -> dict[str, Any]:
    """A version by id, or by workspace, name and version/alias; records consumption when asked
    (``client``: the request carries the API key header, see the module docstring)."""
    consumer = q.get("consumerExperimentKey") or None
    if consumer is not None and not KEY_RE.match(consumer):
        raise CometError(400, f"consumerExperimentKey {consumer!r} is not a tallymark experiment key")
    if consumer is not None and not client:
        raise CometError(400, "recording that an experiment consumed an artifact needs the API key header")

    def fetch(version: str | None) -> dict[str, Any]:
        if consumer is None:
            return artifacts.get_artifact_version(store, caller, ws, name, version)
        return artifacts.consume_artifact_version(store, caller, ws, name, version, consumer)

    if q.get("versionId"):
        ws, name, version = tr.parse_id("av", q["versionId"], 3)
        wanted: str | None = version
    else:
        name = _name_param(q)
        if not name:
            raise CometError(400, "give the artifact's versionId, or its name (artifactName)")
        ws = q.get("workspace") or ""
        if not ws:
            owner = consumer or q.get("experimentKey")
            if not owner:
                raise CometError(400, "give the artifact's workspace")
            ws = experiments.get_experiment(store, caller, owner)["workspace"]
        wanted = q.get("version") or q.get("versionOrAlias") or q.get("alias") or None
    if wanted == "latest":
        try:
            return fetch(wanted)
        except NotFound:
            wanted = None
    try:
        return fetch(wanted)
    except NotFound as exc:
        raise CometError(404, exc.message, tr.ARTIFACT_NOT_FOUND) from None


@rest.get("/artifacts/version")
async def version(request: Request) -> Any:
    client = bool(request.headers.get("authorization"))
    v = await run_in_threadpool(
        _find, store_of(request), require_caller(request), dict(request.query_params), client
    )
    return ok(tr.artifact_version_out(v))


@rest.get("/artifacts/version/files")
async def version_files(request: Request) -> Any:
    client = bool(request.headers.get("authorization"))
    v = await run_in_threadpool(
        _find, store_of(request), require_caller(request), dict(request.query_params), client
    )
    return ok({"files": tr.artifact_files_out(v)})


def _artifact(store: Store, caller: Caller, q: dict[str, str]) -> dict[str, Any]:
    if q.get("artifact_id") or q.get("artifactId"):
        ws, name = tr.parse_id("a", q.get("artifact_id") or q.get("artifactId"), 2)
    else:
        ws, name = q.get("workspace") or "", _name_param(q) or ""
        if not ws or not name:
            raise CometError(400, "give workspace and artifactName")
    versions = artifacts.list_versions(store, caller, ws, name)
    last = versions[-1]
    return {
        "artifactId": tr.artifact_id(ws, name),
        "artifactName": name,
        "artifactType": last["artifactType"],
        "workspaceName": ws,
        "description": None,
        "tags": [],
        "isPublic": False,
        "latestVersion": last["version"],
        "versions": [
            {
                "artifactVersionId": tr.artifact_version_id(ws, name, v["version"]),
                "version": v["version"],
                "alias": v["aliases"],
                "tags": v["versionTags"],
                "sizeInBytes": v["size"],
                "experimentKey": v["sourceExperimentKey"],
                "state": "CLOSED",
                "createdAt": v["createdAt"],
            }
            for v in versions
        ],
    }


@rest.get("/artifacts/get")
async def artifact_details(request: Request) -> Any:
    return ok(
        await run_in_threadpool(
            _artifact, store_of(request), require_caller(request), dict(request.query_params)
        )
    )


def _all(store: Store, caller: Caller, workspace: str, artifact_type: str | None) -> dict[str, Any]:
    out = []
    for a in artifacts.list_artifacts(store, caller, workspace):
        if artifact_type and a["artifactType"] != artifact_type:
            continue
        out.append(
            {
                "artifactId": tr.artifact_id(workspace, a["name"]),
                "artifactName": a["name"],
                "artifactType": a["artifactType"],
                "workspaceName": workspace,
                "versionsCount": a["versions"],
                "lastUpdated": a["lastCreatedAt"],
                "tags": [],
                "isPublic": False,
            }
        )
    return {"artifacts": out}


@rest.get("/artifacts/get-all")
async def all_artifacts(request: Request) -> Any:
    q = request.query_params
    ws = q.get("workspace")
    if not ws:
        raise CometError(400, "give the workspace")
    return ok(await run_in_threadpool(_all, store_of(request), require_caller(request), ws, q.get("type")))


def _labels(store: Store, caller: Caller, body: dict[str, Any]) -> None:
    ws, name, version = tr.parse_id("av", body.get("artifactVersionId"), 3)
    if body.get("versionTags") is not None or body.get("versionMetadata") not in (None, "", "{}"):
        raise unsupported("Changing an artifact version's tags or metadata (versions are immutable)")
    aliases = body.get("alias")
    if aliases is None:
        return
    if not isinstance(aliases, list):
        raise CometError(400, "'alias' must be a list of strings")
    compat_support.set_artifact_aliases(store, caller, ws, name, version, aliases)


@rest.post("/write/artifacts/version/labels")
async def labels(request: Request) -> Any:
    """``LoggedArtifact.update_aliases``: the version's aliases become exactly the list given."""
    body = await json_object(request)
    await run_in_threadpool(_labels, store_of(request), require_caller(request), body)
    return ok()


@rest.post("/write/artifacts/details")
async def details() -> Any:
    raise unsupported("Changing an artifact's type or tags")


@rest.get("/get/artifacts")
async def lineage() -> Any:
    raise unsupported("APIExperiment.get_artifact_lineage", "use tallymark lineage or API().get_lineage()")
