"""Content-addressed blob store: bytes are kept once, under their sha256.

Uploads stream into a temporary file inside the store and are renamed into place only after the
hash is known (and matches the one the client announced), so an interrupted upload leaves nothing
half-visible. Layout: ``ROOT/ab/cd/abcdef…`` with ``ROOT/tmp/`` for uploads in progress.

Every blob store (this one, :class:`tallymark.store.blobs_s3.S3BlobStore`) has the interface described
by :class:`tallymark.store.blobfactory.BlobStore`; garbage collection uses :meth:`iter_shas` and
:meth:`delete`, tamper checks :meth:`verify`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")  # \Z, not $: "$" also matches before a final newline


class BlobTooLarge(ValueError):
    """The upload is longer than the ``max_bytes`` the caller allowed."""


class BlobHashMismatch(ValueError):
    """The uploaded bytes do not hash to the sha256 the client announced."""


class BlobNotFound(FileNotFoundError):
    """No blob with that sha256 is stored."""


class BlobStoreUnavailable(RuntimeError):
    """The store cannot be used at all (folder not writable, bucket missing, server unreachable)."""


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits, else ValueError (never a path or key fragment)."""
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    return sha256


class LocalBlobStore:
    """Blobs in a local folder: ``ROOT/ab/cd/<sha256>``, uploads in progress in ``ROOT/tmp/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    @property
    def url(self) -> str:
        """The folder, as given to ``open_blob_store``."""
        return str(self.root)

    def check(self) -> None:
        """Create the folder if needed; raise BlobStoreUnavailable unless it is a writable directory."""
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobStoreUnavailable(f"cannot use the blob folder {str(self.root)!r}: {exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK) or not os.access(self.root / "tmp", os.W_OK | os.X_OK):
            raise BlobStoreUnavailable(f"the blob folder {str(self.root)!r} is not writable")

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def put(
        self, chunks: Iterable[bytes], max_bytes: int, expected_sha256: str | None = None
    ) -> tuple[str, int]:
        """Store the streamed bytes; returns (sha256, size). Nothing is kept if anything fails."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"the upload exceeds the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise BlobHashMismatch(f"the upload's sha256 is {sha}, not the announced {expected_sha256}")
            final = self._path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            return sha, size
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise

    def put_file(self, fileobj: BinaryIO, max_bytes: int, block: int = 1 << 20) -> tuple[str, int]:
        return self.put(iter(lambda: fileobj.read(block), b""), max_bytes)

    def open(self, sha256: str) -> BinaryIO:
        path = self._path(sha256)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256}") from None

    def iter_bytes(self, sha256: str, block: int = 1 << 20) -> Iterator[bytes]:
        with self.open(sha256) as f:
            while data := f.read(block):
                yield data

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256}") from None

    def modified_at(self, sha256: str) -> float:
        """When the blob was last stored (POSIX seconds); gc spares young blobs not yet referenced."""
        try:
            return self._path(sha256).stat().st_mtime
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256}") from None

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True if it was there. Whether it is still referenced is the caller's concern."""
        try:
            self._path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_shas(self) -> Iterator[str]:
        """Every stored sha256 (in no particular order); uploads in progress and stray files are skipped."""
        if not self.root.is_dir():
            return
        for d1 in os.scandir(self.root):
            if len(d1.name) != 2 or not d1.is_dir(follow_symlinks=False):
                continue
            for d2 in os.scandir(d1.path):
                if len(d2.name) != 2 or not d2.is_dir(follow_symlinks=False):
                    continue
                prefix = d1.name + d2.name
                for f in os.scandir(d2.path):
                    name = f.name
                    if SHA256_RE.match(name) and name.startswith(prefix) and f.is_file(follow_symlinks=False):
                        yield name

    def verify(self, sha256: str) -> bool:
        """Re-hash the stored bytes: True if the blob exists and still hashes to its name."""
        digest = hashlib.sha256()
        try:
            for data in self.iter_bytes(sha256):
                digest.update(data)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256

    def sweep_incomplete(self, older_than: float = 24 * 3600.0) -> int:
        """Remove uploads in progress (``ROOT/tmp/upload-*``) older than ``older_than`` seconds.

        Such files only outlive their upload when the process was killed mid-way; they are never
        visible as blobs. Returns how many were removed.
        """
        tmp_dir = self.root / "tmp"
        if not tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for entry in os.scandir(tmp_dir):
            if not entry.name.startswith("upload-"):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
