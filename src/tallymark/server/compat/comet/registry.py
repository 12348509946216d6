"""The model registry: register a logged model, versions, details, statuses, tags.

Statuses map by name, case-insensitively: Comet's ``Development``, ``Staging``, ``Production`` and
``Archived`` are tallymark's four. tallymark's four-eyes rule holds for Comet clients too: a
``set_status(version, "Production")`` does not move the version. It creates a pending production
request (kept, visible in ``tallymark models show`` and the UI) and is answered 403 with a message
that names the request, so the notebook shows one ``COMET ERROR`` line saying that another person
must approve it (``tallymark models approve ID``). Registering a version directly in production is
refused the same way.
"""

from __future__ import annotations

from typing import Any

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
from tallymark.service import experiments, registry
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, NotFound
from tallymark.service.store import Store

clientlib = router()
rest = router()


def _register(store: Store, caller: Caller, body: dict[str, Any], key: str) -> dict[str, Any]:
    model = body.get("experimentModelName")
    if not isinstance(model, str) or not model:
        raise CometError(400, "'experimentModelName' is required")
    name = body.get("registryModelName") or model
    if not isinstance(name, str):
        raise CometError(400, "'registryModelName' must be a string")
    workspace = experiments.get_experiment(store, caller, key)["workspace"]
    status = body.get("status")
    spec: dict[str, Any] = {
        "experiment_key": key,
        "experiment_model": model,
        "version": body.get("version") or None,
        "status": "development" if status in (None, "", "None") else tr.status_in(status),
        "description": body.get("registryModelDescription") or body.get("versionComment") or None,
        "tags": [str(t) for t in body.get("tags") or []],
    }
    v = registry.register_model(store, caller, workspace, name, spec)
    return tr.model_version_out(workspace, name, v)


@rest.post("/write/registry-model/item/create")
async def register(request: Request) -> Any:
    """``Experiment.register_model``: a registry version made from a model the experiment logged."""
    body = await json_object(request)
    key = experiment_key(body)
    return ok(await run_in_threadpool(_register, store_of(request), require_caller(request), body, key))


def _ws_model(q: Any) -> tuple[str, str]:
    ws, name = q.get("workspaceName"), q.get("modelName")
    if not ws or not name:
        raise CometError(400, "give workspaceName and modelName")
    return ws, name


def _details(store: Store, caller: Caller, ws: str, name: str) -> dict[str, Any]:
    m = registry.get_model(store, caller, ws, name)
    return {
        "registryModelId": tr.model_id(ws, name),
        "modelName": name,
        "workspaceName": ws,
        "description": m.get("description"),
        "isPublic": False,
        "createdAt": m.get("createdAt"),
        "userName": m.get("createdBy"),
        "numberOfVersions": len(m["versions"]),
        "versions": [tr.model_version_out(ws, name, v) for v in m["versions"]],
        "pendingRequests": m.get("pendingRequests", []),
    }


def _list_models(store: Store, caller: Caller, ws: str) -> list[dict[str, Any]]:
    try:
        listed = registry.list_models(store, caller, ws)
    except NotFound:  # a workspace nobody logged to has no models
        return []
    return [
        {
            "registryModelId": tr.model_id(ws, m["name"]),
            "modelName": m["name"],
            "workspaceName": ws,
            "numberOfVersions": m["versions"],
            "latestVersion": m["latest"],
            "isPublic": False,
        }
        for m in listed
    ]


def _workspace(request: Request) -> str:
    ws = request.query_params.get("workspaceName")
    if not ws:
        raise CometError(400, "give workspaceName")
    return ws


@rest.get("/registry-model")
async def models(request: Request) -> Any:
    found = await run_in_threadpool(
        _list_models, store_of(request), require_caller(request), _workspace(request)
    )
    return ok({"registryModels": found})


@rest.get("/registry-model/count")
async def model_count(request: Request) -> Any:
    found = await run_in_threadpool(
        _list_models, store_of(request), require_caller(request), _workspace(request)
    )
    return ok({"registryModelCount": len(found)})


@rest.get("/registry-model/compact-details")
async def compact_details(request: Request) -> Any:
    ws, name = _ws_model(request.query_params)
    d = await run_in_threadpool(_details, store_of(request), require_caller(request), ws, name)
    return ok({k: d[k] for k in ("registryModelId", "modelName", "workspaceName", "description", "isPublic")})


@rest.get("/registry-model/details")
async def details(request: Request) -> Any:
    ws, name = _ws_model(request.query_params)
    return ok(await run_in_threadpool(_details, store_of(request), require_caller(request), ws, name))


@rest.get("/registry-model/notes")
async def notes(request: Request) -> Any:
    ws, name = _ws_model(request.query_params)
    d = await run_in_threadpool(_details, store_of(request), require_caller(request), ws, name)
    return ok({"notes": d["description"] or ""})


def _version(store: Store, caller: Caller, ws: str, name: str, version: str) -> dict[str, Any]:
    return tr.model_version_out(ws, name, registry.get_version(store, caller, ws, name, version))


@rest.get("/registry-model/item/details")
async def version_details(request: Request) -> Any:
    ws, name = _ws_model(request.query_params)
    version = request.query_params.get("version")
    if not version:
        raise CometError(400, "give the version")
    return ok(
        await run_in_threadpool(_version, store_of(request), require_caller(request), ws, name, version)
    )


def _items(store: Store, caller: Caller, q: Any) -> list[dict[str, Any]]:
    ws, name = _ws_model(q)
    status = q.get("status") or None
    out = [
        tr.model_version_out(ws, name, v)
        for v in registry.find_versions(
            store, caller, ws, name, tr.status_in(status) if status else None, q.get("tag") or None
        )
        if v["version"].startswith(q.get("versionPrefix") or "")
    ]
    out.sort(key=lambda v: tr.version_key(v["version"]), reverse=True)
    return out


@rest.get("/registry-model/items")
async def items(request: Request) -> Any:
    """``Model.find_versions``: newest first, filtered by status, tag and version prefix."""
    return ok(
        {
            "items": await run_in_threadpool(
                _items, store_of(request), require_caller(request), request.query_params
            )
        }
    )


@rest.get("/registry-model/latest_version")
async def latest(request: Request) -> Any:
    found = await run_in_threadpool(_items, store_of(request), require_caller(request), request.query_params)
    if not found:
        raise CometError(404, "no version of this model matches")
    return ok(found[0])


@rest.get("/registry-model/allowed_status_values")
async def allowed_statuses() -> Any:
    return ok({"allowedStatus": tr.COMET_STATUSES})


def _set_status(store: Store, caller: Caller, body: dict[str, Any]) -> None:
    ws, name, version = tr.parse_id("mv", body.get("modelItemId"), 3)
    target = tr.status_in(body.get("status"))
    who = caller.name
    current = registry.get_version(store, caller, ws, name, version)["status"]
    if current == target:
        return
    if target != registry.NEEDS_APPROVAL:
        registry.set_status(store, caller, ws, name, version, {"status": target})
        return
    try:
        req = registry.request_status(
            store,
            caller,
            ws,
            name,
            version,
            {"status": target, "comment": "requested with Comet's set_status"},
        )
    except Conflict as exc:
        raise CometError(409, f"{exc.message}; another person must approve it (four eyes)") from None
    raise CometError(
        403,
        f"{name} {version} is not in Production yet: moving a version to production needs a second "
        f"person's approval (four eyes). Request #{req['id']} was created and is pending; someone "
        f"other than {who} approves it with `tallymark models approve {req['id']}` or in the UI",
    )


@rest.post("/write/registry-model/item/status")
async def set_status(request: Request) -> Any:
    """``Model.set_status``: Development, Staging, Archived at once; Production after approval."""
    body = await json_object(request)
    await run_in_threadpool(_set_status, store_of(request), require_caller(request), body)
    return ok()


@rest.get("/write/registry-model/item/stage")
async def add_tag() -> Any:
    """``Model.add_tag`` is a GET in comet_ml's protocol: a GET never changes state in tallymark (a
    link on any web page could otherwise tag a model), so it is refused with the way that works."""
    raise unsupported(
        "Tagging a model version with Model.add_tag (comet_ml sends it as a GET, and a GET never "
        "changes anything in tallymark)",
        "pass tags=[...] to register_model, or tallymark.API().get_model(ws, name).add_tag(version, tag)",
    )


def _download_instructions(store: Store, caller: Caller, q: Any) -> dict[str, Any]:
    ws, name = _ws_model(q)
    version = q.get("version")
    if not version:
        found = _items(store, caller, q)
        if not found:
            raise CometError(404, f"model {name!r} has no version")
        version = found[0]["version"]
    v = registry.get_version(store, caller, ws, name, version)
    model, key = v["experimentModel"], v["experimentKey"]
    assets: list[dict[str, Any]] = []
    if v.get("remoteUri"):
        assets.append(
            _model_asset(key, model, v["remoteUri"].rstrip("/").rsplit("/", 1)[-1], 0, v["remoteUri"])
        )
    for f in v.get("files") or []:
        assets.append(_model_asset(key, model, f["logicalPath"], f.get("size") or 0, f.get("uri"), f))
    return {"versions": [{"version": version, "assets": assets}], "s3DirectDownloadEnabled": False}


def _model_asset(
    key: str, model: str, path: str, size: int, uri: str | None, f: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "fileName": path,
        "fileSize": size,
        "remote": uri is not None,
        "link": uri,
        "dir": f"models/{model}",
        "type": "model-element",
        "assetId": tr.make_id("mf", key, model, path),
        "metadata": tr.comet_metadata_out((f or {}).get("metadata")),
        "experimentKey": key,
        "runContext": None,
        "step": None,
        "tags": [],
    }


@rest.get("/registry-model/item/download-instructions")
async def download_instructions(request: Request) -> Any:
    return ok(
        await run_in_threadpool(
            _download_instructions, store_of(request), require_caller(request), request.query_params
        )
    )


@rest.post("/write/registry-model")
async def legacy_register() -> Any:
    raise unsupported("The pre-3.5 registry API", "upgrade comet-ml")


@rest.post("/write/registry-model/item")
async def legacy_register_item() -> Any:
    raise unsupported("The pre-3.5 registry API", "upgrade comet-ml")


@rest.get("/write/registry-model/item/stage/delete")
async def delete_tag() -> Any:
    raise unsupported("Removing a tag from a model version")


@rest.get("/write/registry-model/item/delete")
async def delete_version() -> Any:
    raise unsupported("Deleting a model version (archive it with set_status('Archived'))")


@rest.get("/write/registry-model/delete")
async def delete_model() -> Any:
    raise unsupported("Deleting a registered model")


@rest.post("/write/registry-model/item/update")
async def update_version() -> Any:
    raise unsupported("Changing a model version's comment or stages")


@rest.post("/write/registry-model/update")
async def update_model() -> Any:
    raise unsupported("Renaming a registered model or changing its description")
