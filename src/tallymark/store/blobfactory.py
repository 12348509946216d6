"""Open a blob store from its URL, and the interface every blob store has.

URL forms (the ``--blobs`` option of ``tallymark server``, the ``blobs`` setting):

* a folder: ``/srv/tallymark/blobs``, ``~/blobs``, ``relative/dir`` or ``file:///srv/tallymark/blobs``
  → :class:`~tallymark.store.blobs.LocalBlobStore`;
* ``s3://bucket`` or ``s3://bucket/some/prefix`` → :class:`~tallymark.store.blobs_s3.S3BlobStore`,
  on AWS or, with ``s3_endpoint_url`` (``--s3-endpoint-url``), on any S3-compatible server.

Nothing here imports boto3 or talks to the network: the S3 client is created on first use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from tallymark.store.blobs import LocalBlobStore
from tallymark.store.blobs_s3 import S3BlobStore
from tallymark.store.paths import UnsafePath, clean_logical_path

__all__ = ["BlobStore", "open_blob_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed store: bytes are kept once, under the hex sha256 of their content.

    Every method taking a ``sha256`` raises ValueError for anything but 64 lowercase hex digits, so a
    sha can never smuggle a path or key fragment. Reads of a missing blob raise
    :class:`~tallymark.store.blobs.BlobNotFound` (a FileNotFoundError).
    """

    @property
    def url(self) -> str:
        """Where the blobs live (a folder or ``s3://bucket/prefix``)."""
        ...

    def check(self) -> None:
        """Raise BlobStoreUnavailable unless the store can be used (call it when a server starts)."""
        ...

    def has(self, sha256: str) -> bool: ...

    def put(
        self, chunks: Iterable[bytes], max_bytes: int, expected_sha256: str | None = None
    ) -> tuple[str, int]:
        """Store the streamed bytes; returns (sha256, size).

        Raises BlobTooLarge past ``max_bytes`` and BlobHashMismatch if ``expected_sha256`` is given and
        differs. If anything fails (including the iterable raising) nothing becomes visible.
        """
        ...

    def put_file(self, fileobj: BinaryIO, max_bytes: int, block: int = 1 << 20) -> tuple[str, int]: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def iter_bytes(self, sha256: str, block: int = 1 << 20) -> Iterator[bytes]: ...

    def size(self, sha256: str) -> int: ...

    def modified_at(self, sha256: str) -> float:
        """When the blob was last written, in POSIX seconds (gc spares blobs younger than a grace period)."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob; True if it existed. Reference counting is the caller's job (``tallymark gc``)."""
        ...

    def iter_shas(self) -> Iterator[str]:
        """Every stored sha256, in no particular order (for garbage collection)."""
        ...

    def verify(self, sha256: str) -> bool:
        """Re-hash the stored bytes: True if the blob exists and its content still has that sha256."""
        ...

    def sweep_incomplete(self, older_than: float = 24 * 3600.0) -> int:
        """Remove leftovers of uploads killed mid-way that are older than ``older_than`` seconds."""
        ...


def _open_s3(url: str, endpoint_url: str | None) -> S3BlobStore:
    parts = urlsplit(url)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{url!r}: an s3:// blob store URL takes no query or fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{url!r}: put no credentials in the URL; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        )
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{url!r}: {bucket!r} is not a valid bucket name")
    raw_prefix = unquote(parts.path).strip("/")
    prefix = ""
    if raw_prefix:
        try:
            prefix = clean_logical_path(raw_prefix)
        except UnsafePath as exc:
            raise ValueError(f"{url!r}: bad key prefix: {exc.reason}") from None
    return S3BlobStore(bucket, prefix, endpoint_url=endpoint_url)


def open_blob_store(url: str, s3_endpoint_url: str | None = None) -> BlobStore:
    """The blob store at ``url``: a folder (or ``file://`` URL), or ``s3://bucket[/prefix]``.

    ``s3_endpoint_url`` (e.g. ``http://127.0.0.1:9000``) points the S3 client at an S3-compatible
    server; it is an error to give it with a folder. Credentials come from the standard AWS
    environment variables, profiles or instance roles, never from the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("a blob store URL must be a non-empty string (a folder or s3://bucket/prefix)")
    url = url.strip()
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    if scheme == "s3":
        return _open_s3(url, s3_endpoint_url)
    if s3_endpoint_url:
        raise ValueError(f"an S3 endpoint URL was given, but the blob store {url!r} is not an s3:// URL")
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{url!r}: a file:// blob store must be on this machine")
        return LocalBlobStore(Path(unquote(parts.path)))
    if scheme is not None:
        raise ValueError(f"{url!r}: unsupported blob store scheme {scheme!r} (use a folder or s3://)")
    return LocalBlobStore(Path(url).expanduser())
