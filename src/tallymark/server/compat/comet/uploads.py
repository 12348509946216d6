"""Uploads: multipart requests with a ``file`` part and a ``metadata`` part, the rest in the query.

What an upload becomes depends on its Comet ``type`` (query parameter):

| Comet upload | tallymark |
| --- | --- |
| ``artifactVersionId`` given | a file of that artifact version (blob store) |
| ``confusion-matrix`` | a ``confusion_matrix`` item |
| ``curve`` | a ``curve`` item |
| ``source_code`` | a ``code`` item |
| ``model-element`` (``log_model``) | a file of the experiment's model ``groupingName`` |
| the git patch (``git-patch/upload``) | the ``diff`` of the ``git`` item |
| anything else (assets, images, text samples, tables…) | an asset; a CSV/TSV also becomes a ``table`` item |
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallymark.server.compat.comet import translate as tr
from tallymark.server.compat.comet.http import (
    CometError,
    caller_of,
    json_object,
    ok,
    router,
    store_of,
    unsupported,
)
from tallymark.server.compat.comet.lifecycle import experiment_key
from tallymark.server.compat.comet.log import apply
from tallymark.service import assets, compat_support, files
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, TooLarge, storage_error
from tallymark.service.models import BATCH_ID_RE, KEY_RE
from tallymark.service.store import Store

clientlib = router()
rest = router()

CHUNK = 1 << 20


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    f.seek(0)
    while data := f.read(CHUNK):
        yield data


def _read_all(f: BinaryIO, limit: int, what: str) -> bytes:
    f.seek(0)
    data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the {what} is larger than {limit:,} bytes")
    return data


def _put_blob(store: Store, f: BinaryIO) -> tuple[str, int]:
    return files.store_blob(store, _chunks(f))


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


async def _form(request: Request) -> tuple[UploadFile | None, str | None, dict[str, Any] | None]:
    """The upload's ``file`` part (or ``link``, a remote URI) and its metadata."""
    try:
        form = await request.form(max_files=4, max_fields=16)
    except AssertionError:  # pragma: no cover - python-multipart missing
        raise CometError(400, "uploads need the python-multipart package on the server") from None
    except (CometError, StarletteHTTPException):  # e.g. 413 from the body limit, as it streams in
        raise
    except OSError as exc:  # spooling the parts to a temporary file: the server's fault, not the body's
        known = storage_error(exc, "the upload to a temporary file")
        if known is None:
            raise
        raise known from exc
    except Exception as exc:
        raise CometError(400, f"the upload is not a valid multipart body: {exc}") from None
    upload = form.get("file")
    link = form.get("link")
    if isinstance(link, UploadFile):
        link = (await link.read()).decode("utf-8", "replace")
    meta_part = form.get("metadata")
    if isinstance(meta_part, UploadFile):
        meta_part = (await meta_part.read()).decode("utf-8", "replace")
    metadata = tr.metadata_in(meta_part)
    if upload is not None and not isinstance(upload, UploadFile):
        upload = None
    return upload, link if isinstance(link, str) else None, metadata


def _store_upload(
    store: Store,
    caller: Caller,
    key: str,
    q: dict[str, str],
    f: BinaryIO | None,
    link: str | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """One Comet upload into tallymark (see the table in the module docstring)."""
    ctype = q.get("type") or "asset"
    asset_id = q.get("assetId") or ""
    file_name = q.get("fileName") or "file"
    if file_name == "auto-generated-in-the-backend":  # log_text: Comet's backend names it
        file_name = f"{ctype}-{asset_id[:12] or 'asset'}.txt"
    step = tr.int_or_none(q.get("step"), "step")
    settings = store.settings
    session = q.get("runId")  # an import session's token (lifecycle.py); else the key, which opens nothing
    if q.get("artifactVersionId"):
        ws, name, version = tr.parse_id("av", q["artifactVersionId"], 3)
        spec: dict[str, Any] = {"logical_path": file_name, "metadata": metadata}
        if link is not None:
            spec["uri"] = link
        elif f is not None:
            spec["sha256"], spec["size"] = _put_blob(store, f)
        else:
            raise CometError(400, "the upload has no 'file' part")
        compat_support.append_artifact_files(store, caller, ws, name, version, [spec], key, session)
        return {"assetId": tr.artifact_file_id(ws, name, version, file_name)}
    if link is not None:
        raise unsupported(
            "A remote asset outside an artifact (log_remote_asset)",
            "add it to an Artifact with add_remote(), or log the file itself",
        )
    if f is None:
        raise CometError(400, "the upload has no 'file' part")
    raw_id = (key, asset_id or file_name, ctype, step)
    if ctype in ("confusion-matrix", "curve", "source_code"):
        data = _read_all(f, settings.max_item_bytes, ctype)
        if ctype == "confusion-matrix":
            item = tr.confusion_matrix_item(data, step)
        elif ctype == "curve":
            item = tr.curve_item(data, q.get("fileName"), step, _flag(q.get("overwrite")))
        else:
            item = tr.code_item(data, q.get("fileName"))
        apply(store, caller, key, "upload", raw_id, session, items=[item])
        return {"assetId": asset_id}
    if ctype == "model-element":
        model = q.get("groupingName")
        if not model:
            raise CometError(400, "a model file needs 'groupingName' (the model's name)")
        sha, size = _put_blob(store, f)
        spec = {"logical_path": file_name, "sha256": sha, "size": size, "metadata": metadata}
        compat_support.add_model_files(store, caller, key, model, [spec], session=session)
        return {"assetId": asset_id}
    if ctype not in ("asset", "all"):
        metadata = dict(metadata or {}) | {tr.COMET_TYPE_KEY: ctype}
    meta: dict[str, Any] = {"file_name": file_name, "step": step, "metadata": metadata}
    if asset_id and BATCH_ID_RE.match(asset_id):
        meta["upload_id"] = asset_id
    out = assets.add_asset(store, caller, key, meta, _chunks(f), session)
    if (
        ctype in ("asset", "dataframe")
        and out["fileSize"] <= settings.max_item_bytes
        and not out["duplicate"]
    ):
        table = tr.table_item(_read_all(f, settings.max_item_bytes, "table"), file_name)
        if table is not None:
            try:
                apply(store, caller, key, "table", raw_id, session, items=[table])
            except (Invalid, TooLarge):
                pass  # not a table after all: the asset is what was asked for
    return {"assetId": str(out["assetId"])}


async def _upload(request: Request, key_param: str) -> Any:
    q = dict(request.query_params)
    key = q.get(key_param) or q.get("experimentKey") or q.get("experimentId")
    if not key or not KEY_RE.match(key):
        raise CometError(400, f"{key_param} {key!r} is not a tallymark experiment key")
    upload, link, metadata = await _form(request)
    f = upload.file if upload is not None else None
    try:
        out = await run_in_threadpool(
            _store_upload, store_of(request), caller_of(request), key, q, f, link, metadata
        )
    finally:
        if upload is not None:
            await upload.close()
    return ok(out)


@clientlib.post("/asset/upload")
async def asset_upload(request: Request) -> Any:
    return await _upload(request, "experimentId")


@clientlib.post("/visualizations/upload")
async def visualization_upload(request: Request) -> Any:
    return await _upload(request, "experimentId")


@rest.post("/write/experiment/upload-asset")
async def api_upload(request: Request) -> Any:
    return await _upload(request, "experimentKey")


def _store_patch(store: Store, caller: Caller, key: str, f: BinaryIO, session: str | None) -> None:
    limit = store.settings.max_item_bytes
    diff = tr.git_patch_text(_read_all(f, limit, "git patch"), limit)
    fields = {"diff": diff, "is_dirty": bool(diff.strip())}
    compat_support.merge_item(store, caller, key, "git", "git", fields, session)


async def _patch(request: Request, key_param: str) -> Any:
    key = request.query_params.get(key_param) or request.query_params.get("experimentKey") or ""
    if not KEY_RE.match(key):
        raise CometError(400, f"{key_param} {key!r} is not a tallymark experiment key")
    upload, _, _ = await _form(request)
    if upload is None:
        raise CometError(400, "the upload has no 'file' part")
    try:
        session = request.query_params.get("runId")
        await run_in_threadpool(
            _store_patch, store_of(request), caller_of(request), key, upload.file, session
        )
    finally:
        await upload.close()
    return ok()


@clientlib.post("/git-patch/upload")
async def git_patch_upload(request: Request) -> Any:
    return await _patch(request, "experimentId")


@rest.post("/write/experiment/git/patch")
async def api_git_patch(request: Request) -> Any:
    return await _patch(request, "experimentKey")


def _remote_model(store: Store, caller: Caller, key: str, body: dict[str, Any]) -> None:
    name = body.get("modelName")
    entities = body.get("remoteEntities", body.get("remoteAssets"))
    if not isinstance(name, str) or not name:
        raise CometError(400, "'modelName' is required")
    if not isinstance(entities, list) or not entities or not all(isinstance(e, dict) for e in entities):
        raise CometError(400, "'remoteEntities' must be a non-empty list of objects")
    if len(entities) == 1:
        e = entities[0]
        uri = e.get("remoteUrl") or e.get("link")
        meta = tr.metadata_in(e.get("metadata"))
        compat_support.add_model_files(store, caller, key, name, [], remote_uri=uri, metadata=meta)
        return
    files = [
        {
            "logical_path": e.get("fileName") or f"remote-{i}",
            "uri": e.get("remoteUrl") or e.get("link"),
            "metadata": tr.metadata_in(e.get("metadata")),
        }
        for i, e in enumerate(entities)
    ]
    compat_support.add_model_files(store, caller, key, name, files)


@clientlib.post("/asset/log-remote-model")
async def log_remote_model(request: Request) -> Any:
    """``log_remote_model``: a model that lives elsewhere, by URI (one URI: the model's remote URI)."""
    body = await json_object(request)
    key = experiment_key(body)
    await run_in_threadpool(_remote_model, store_of(request), caller_of(request), key, body)
    return ok()


@clientlib.post("/asset/asset-item")
async def asset_item() -> Any:
    raise unsupported("3D point clouds (log_points_3d)")


@clientlib.post("/asset")
async def create_asset() -> Any:
    raise unsupported("3D point clouds (log_points_3d)")


@clientlib.put("/asset/{asset_id}/thumbnail")
async def thumbnail(asset_id: str) -> Any:
    raise unsupported("Asset thumbnails")
