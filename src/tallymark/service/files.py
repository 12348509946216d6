"""Files of artifact versions and logged models: validation against the blob store and rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from tallymark import jsonvalue
from tallymark.service.errors import Invalid, TooLarge, storage_error
from tallymark.service.models import FileIn
from tallymark.service.store import Store
from tallymark.store.schema import files


def check_files(store: Store, items: list[FileIn]) -> list[dict[str, Any]]:
    """Clean logical paths, require each local file's blob to be stored (with its size)."""
    from tallymark.store.paths import UnsafePath, clean_logical_path

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for f in items:
        try:
            path = clean_logical_path(f.logical_path)
        except UnsafePath as exc:
            raise Invalid(f"unsafe logical path {f.logical_path!r}: {exc}") from None
        if path in seen:
            raise Invalid(f"two files share the logical path {path!r}")
        seen.add(path)
        if (f.sha256 is None) == (f.uri is None):
            raise Invalid(f"{path!r}: give either sha256 (a stored file) or uri (a remote reference)")
        size = f.size
        if f.sha256 is not None:
            if not store.blobs.has(f.sha256):
                raise Invalid(f"{path!r}: blob {f.sha256} is not stored; upload it first")
            actual = store.blobs.size(f.sha256)
            if size is not None and size != actual:
                raise Invalid(f"{path!r}: size {size} does not match the stored blob ({actual} bytes)")
            size = actual
        rows.append(
            {
                "logical_path": path,
                "sha256": f.sha256,
                "size": size,
                "uri": f.uri,
                "metadata_json": None if f.metadata is None else jsonvalue.dumps(f.metadata),
            }
        )
    return rows


def insert_files(conn: Connection, owner_kind: str, owner_id: int, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(files.insert(), [r | {"owner_kind": owner_kind, "owner_id": owner_id} for r in rows])


def read_files(conn: Connection, owner_kind: str, owner_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(files)
        .where(files.c.owner_kind == owner_kind, files.c.owner_id == owner_id)
        .order_by(files.c.logical_path)
    ).all()
    return [
        {
            "logicalPath": r.logical_path,
            "sha256": r.sha256,
            "size": r.size,
            "uri": r.uri,
            "remote": r.uri is not None,
            "metadata": None if r.metadata_json is None else jsonvalue.loads(r.metadata_json),
        }
        for r in rows
    ]


def store_blob(
    store: Store,
    chunks: Iterable[bytes],
    expected_sha256: str | None = None,
    what: str = "an uploaded file",
) -> tuple[str, int]:
    """Stream bytes into the blob store; returns (sha256, size).

    With ``expected_sha256`` the bytes must hash to it (else 422, nothing kept), and a blob already
    stored under it is not written again (the chunks are then left unread). Over the asset size
    limit: 413, nothing kept. No room on the blob store's disk: 507 naming ``what`` (the part
    written is removed by the store), never an error that blames the client's file.
    """
    from tallymark.store.blobs import BlobHashMismatch, BlobTooLarge

    store.db.require_writable()  # a read-only home: say so, not "permission denied" from the blob folder
    if expected_sha256 is not None and store.blobs.has(expected_sha256):
        return expected_sha256, store.blobs.size(expected_sha256)
    try:
        return store.blobs.put(chunks, store.settings.max_asset_bytes, expected_sha256)
    except BlobTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except BlobHashMismatch as exc:
        raise Invalid(str(exc)) from None
    except OSError as exc:
        known = storage_error(exc, f"{what} to the blob store")
        if known is None:
            raise
        raise known from exc


def missing_blobs(store: Store, shas: list[str]) -> list[str]:
    """Which of these blobs the store does not have (the SDK uploads only those)."""
    return [s for s in dict.fromkeys(shas) if not store.blobs.has(s)]
