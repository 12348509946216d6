"""Content-addressed blob store: bytes are kept once, under their sha256.

Uploads stream into a temporary file inside the store and are renamed into place only after the
hash is known (and matches the one the client announced), so an interrupted upload leaves nothing
half-visible. Layout: ``ROOT/ab/cd/abcdef…`` with ``ROOT/tmp/`` for uploads in progress.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobTooLarge(ValueError):
    pass


class BlobHashMismatch(ValueError):
    pass


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def put(
        self, chunks: Iterable[bytes], max_bytes: int, expected_sha256: str | None = None
    ) -> tuple[str, int]:
        """Store the streamed bytes; returns (sha256, size). Nothing is kept if anything fails."""
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
        return self._path(sha256).open("rb")

    def iter_bytes(self, sha256: str, block: int = 1 << 20) -> Iterator[bytes]:
        with self.open(sha256) as f:
            while data := f.read(block):
                yield data

    def size(self, sha256: str) -> int:
        return self._path(sha256).stat().st_size
