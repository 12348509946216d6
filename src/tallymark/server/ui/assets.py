"""The UI's own static files (our JS and CSS, the vendored uPlot), served from the package.

Files are read once into memory with a content hash; pages link them as ``/-/static/PATH?v=HASH``
so a browser may cache them for a year and still gets new files after an upgrade. Only files
under ``static/`` with a known extension are served, never anything else in the package.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@lru_cache(maxsize=1)
def _files() -> dict[str, StaticFile]:
    out: dict[str, StaticFile] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        ctype = TYPES.get(path.suffix.lower())
        if ctype is None or not path.is_file():
            continue
        body = path.read_bytes()
        packed = (
            gzip.compress(body, 6, mtime=0)
            if len(body) > 1024 and not ctype.startswith("image/png")
            else None
        )
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        out[path.relative_to(STATIC_DIR).as_posix()] = StaticFile(body, packed, ctype, etag)
    return out


def get(path: str) -> StaticFile | None:
    """The static file at ``path`` (relative to static/), or None."""
    return _files().get(path)


@lru_cache(maxsize=1)
def version() -> str:
    """One hash over every static file: the cache-busting ``?v=`` of this installation."""
    h = hashlib.sha256()
    for name, f in sorted(_files().items()):
        h.update(name.encode())
        h.update(f.etag.encode())
    return h.hexdigest()[:12]


def modules() -> list[str]:
    """Our JS modules (``js/*.js``), for ``<link rel="modulepreload">``."""
    return [name for name in _files() if name.startswith("js/") and name.endswith(".js")]
