"""Files of artifact versions and logged models (validation against the blob store, rows) and the
blob operations of the API: which hashes are missing, upload, raw read.

Blobs are content-addressed and shared: one stored copy serves every workspace that references the
same bytes. So whether a hash is stored must not be told across workspaces (it would say "someone
here has this exact file"), and knowing a hash must not be enough to reference (and then read) a
blob. The rule, for every caller but the local admin and server admins:

* A blob is **visible** to a caller when an owner of it (an experiment asset, a file of an artifact
  version or of a logged model) is in a workspace where the caller has a role, or when the caller
  uploaded it themselves (their ``blob.put`` entry in the audit log).
* ``POST /blobs/missing`` answers "stored" only for visible blobs; every other hash is "missing",
  stored or not, so the client uploads it.
* ``PUT /blobs/{sha256}`` of a stored blob that is not visible reads and hashes the whole body, as
  for a new blob: the answer is the same whether it was stored (201 when the bytes hash to the
  name, 422 otherwise), and a caller who sent the right bytes has proved they hold them; the upload
  is recorded (``blob.put``), which makes the blob visible to them.
* Logging files (an artifact version, a model) that name a blob the caller cannot see is refused as
  if it were not stored ("upload it first").
* ``GET /blobs/{sha256}`` (bytes without an owner) is for server admins; everyone else reads bytes
  through what owns them (an asset, an artifact version, a model version), checked there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, select

from tallymark import jsonvalue
from tallymark.service import guard, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, NotFound, TooLarge, storage_error
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


def _sees_all(caller: Caller) -> bool:
    return caller.auth_method == "local" or caller.is_admin


def visible_blobs(store: Store, caller: Caller, shas: list[str]) -> set[str]:
    """Which of these stored-or-not hashes ``caller`` may see (see the module docstring)."""
    if _sees_all(caller):
        return set(shas)
    owners = lookups.blob_owners(store, shas)
    seen = {s for s, wss in owners.items() if any(caller.role(ws) is not None for ws in wss)}
    rest = [s for s in shas if s not in seen]
    return seen | (lookups.blobs_put_by(store, caller.name, rest) if rest else set())


def missing_blobs(store: Store, caller: Caller, shas: list[str]) -> list[str]:
    """Which of these blobs the client must upload: those not stored, and those stored that the
    caller may not see (the module docstring says why); the SDK uploads only those."""
    guard.allow(caller, "blob.missing")
    wanted = list(dict.fromkeys(shas))
    stored = [s for s in wanted if store.blobs.has(s)]
    visible = visible_blobs(store, caller, stored) if stored else set()
    return [s for s in wanted if s not in visible]


def require_visible(store: Store, caller: Caller, rows: list[dict[str, Any]]) -> None:
    """Refuse file rows (from :func:`check_files`) naming a stored blob the caller may not see,
    with the very message of a blob that is not stored."""
    shas = [r["sha256"] for r in rows if r["sha256"] is not None]
    if not shas or _sees_all(caller):
        return
    visible = visible_blobs(store, caller, shas)
    for r in rows:
        if r["sha256"] is not None and r["sha256"] not in visible:
            raise Invalid(f"{r['logical_path']!r}: blob {r['sha256']} is not stored; upload it first")


def put_blob(store: Store, caller: Caller, chunks: Iterable[bytes], sha256: str) -> dict[str, Any]:
    """Store bytes that must hash to ``sha256`` (``blob.put``); ``{"sha256", "size"}``.

    The bytes go to the blob store first (they become visible only once verified), then the upload
    is recorded in its own short transaction: the database's writer is never held while a client
    sends a big file. An upload of a blob the caller could already see changes nothing and appends
    no entry; one the caller could not see is verified in full (module docstring) and recorded.
    """
    guard.allow(caller, "blob.put")
    changed = True
    if store.blobs.has(sha256) and not visible_blobs(store, caller, [sha256]):
        store.db.require_writable()
        got, size = _hash_upload(chunks, store.settings.max_asset_bytes, sha256)
    else:
        changed = not store.blobs.has(sha256)
        got, size = store_blob(store, chunks, sha256)
    with guard.write(
        store, caller, "blob.put", workspace=None, object=("blob", got), payload={"sha256": got, "size": size}
    ) as w:
        w.changed = changed
    return {"sha256": got, "size": size}


def _hash_upload(chunks: Iterable[bytes], max_bytes: int, expected: str) -> tuple[str, int]:
    """Hash an upload without keeping it, with the answers of :meth:`LocalBlobStore.put`."""
    import hashlib

    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"the upload exceeds the limit of {max_bytes} bytes")
        digest.update(chunk)
    sha = digest.hexdigest()
    if sha != expected:
        raise Invalid(f"the upload's sha256 is {sha}, not the announced {expected}")
    return sha, size


def read_blob(store: Store, caller: Caller, sha256: str) -> tuple[int, Iterator[bytes]]:
    """(size, bytes) of a blob by hash alone (``blob.read``: server admins; see the module)."""
    guard.allow(caller, "blob.read")
    if not store.blobs.has(sha256):
        raise NotFound(f"no blob {sha256}")
    return store.blobs.size(sha256), store.blobs.iter_bytes(sha256)


def owned_blob(
    store: Store, sha256: str, listed: list[dict[str, Any]], what: str
) -> tuple[int, Iterator[bytes]]:
    """(size, bytes) of blob ``sha256`` if it is one of the ``listed`` files (of an object whose
    read the caller was allowed), else NotFound naming ``what``."""
    if not any(f.get("sha256") == sha256 for f in listed) or not store.blobs.has(sha256):
        raise NotFound(f"{what} has no file {sha256}")
    return store.blobs.size(sha256), store.blobs.iter_bytes(sha256)
