"""Files logged to an experiment: streamed into the blob store, then recorded in one transaction."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import select

from tallymark import jsonvalue
from tallymark.service import guard
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound, TooLarge
from tallymark.service.experiments import experiment_row, require_running, visible_workspace
from tallymark.service.files import store_blob
from tallymark.service.models import AssetMeta, validated
from tallymark.service.store import Store, now_ms
from tallymark.store.db import inserted_id
from tallymark.store.schema import assets

# Served inline only when they cannot run script in a browser; everything else is an attachment.
SAFE_INLINE = {
    "text/plain",
    "text/csv",
    "application/json",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
}


def guess_type(file_name: str) -> str:
    ctype = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return ctype


def add_asset(
    store: Store,
    caller: Caller,
    key: str,
    meta: AssetMeta | dict[str, Any],
    chunks: Iterable[bytes],
    session: str | None = None,
) -> dict[str, Any]:
    """Store the bytes (streamed, hashed) and record the asset. Idempotent by ``upload_id``.

    ``session``: an import session's token (see ``experiments.require_running``). One audit entry
    (``asset.add``, payload: the metadata and the bytes' SHA-256), none for a replayed upload.
    """
    m = validated(AssetMeta, meta)
    ws = visible_workspace(store, caller, key, "asset.add")
    if m.metadata is not None and len(jsonvalue.dumps(m.metadata)) > store.settings.max_value_bytes:
        raise TooLarge("the asset's metadata is larger than the value limit")
    with store.db.read() as conn:
        row = experiment_row(conn, key)
        if m.upload_id is not None:
            done = _replayed(conn, row.id, m.upload_id)
            if done is not None:
                return done
        require_running(row, session)
    sha, size = store_blob(store, chunks, m.sha256, what=f"asset {m.file_name!r}")
    now = now_ms()
    payload = m.model_dump(mode="json", exclude={"sha256"}) | {"sha256": sha, "size": size}
    with guard.write(
        store, caller, "asset.add", workspace=ws, object=("experiment", key), payload=payload
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        if m.upload_id is not None:
            done = _replayed(conn, row.id, m.upload_id)
            if done is not None:
                w.changed = False
                return done
        require_running(row, session, conn)
        res = conn.execute(
            assets.insert().values(
                experiment_id=row.id,
                file_name=m.file_name,
                sha256=sha,
                size=size,
                content_type=guess_type(m.file_name),
                step=m.step,
                metadata_json=None if m.metadata is None else jsonvalue.dumps(m.metadata),
                upload_id=m.upload_id,
                created_at=now,
            )
        )
        new = conn.execute(select(assets).where(assets.c.id == inserted_id(res))).one()
        return asset_dict(new) | {"duplicate": False}


def _replayed(conn: Any, experiment_id: int, upload_id: str) -> dict[str, Any] | None:
    """The asset an upload id already created (a retried or replayed upload), if any."""
    existing = conn.execute(
        select(assets).where(assets.c.experiment_id == experiment_id, assets.c.upload_id == upload_id)
    ).first()
    return None if existing is None else asset_dict(existing) | {"duplicate": True}


def asset_dict(row: Any) -> dict[str, Any]:
    return {
        "assetId": row.id,
        "fileName": row.file_name,
        "sha256": row.sha256,
        "fileSize": row.size,
        "contentType": row.content_type,
        "step": row.step,
        "metadata": None if row.metadata_json is None else jsonvalue.loads(row.metadata_json),
        "createdAt": row.created_at,
    }


def list_assets(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    visible_workspace(store, caller, key, "asset.list")
    with store.db.read() as conn:
        row = experiment_row(conn, key)
        rows = conn.execute(
            select(assets).where(assets.c.experiment_id == row.id).order_by(assets.c.id)
        ).all()
    return [asset_dict(r) for r in rows]


def get_asset(store: Store, caller: Caller, key: str, asset_id: int) -> dict[str, Any]:
    """An asset's record (the caller may read the experiment's assets)."""
    visible_workspace(store, caller, key, "asset.read")
    with store.db.read() as conn:
        row = experiment_row(conn, key)
        a = conn.execute(
            select(assets).where(assets.c.experiment_id == row.id, assets.c.id == asset_id)
        ).first()
    if a is None:
        raise NotFound(f"experiment {key} has no asset {asset_id}")
    return asset_dict(a)


def asset_chunks(
    store: Store, caller: Caller, key: str, asset_id: int
) -> tuple[dict[str, Any], Iterator[bytes]]:
    """An asset's record and its bytes as an iterator, once the caller may read the experiment."""
    a = get_asset(store, caller, key, asset_id)
    return a, store.blobs.iter_bytes(a["sha256"])


def asset_bytes(store: Store, caller: Caller, key: str, asset_id: int) -> bytes:
    """An asset's whole content (small assets: the SDK's ``asset_bytes``)."""
    a = get_asset(store, caller, key, asset_id)
    with store.blobs.open(a["sha256"]) as f:
        data: bytes = f.read()
    return data
