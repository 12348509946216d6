"""Files that hold a secret outside the database: the server secret and the audit signing key.

Both are created on first use by whichever process gets there first, and refused when anyone but
their owner may read them (a silently regenerated or world-readable key would be worse than none).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["create_once", "readable_by_others"]


def create_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 unless it exists: written to a temporary file,
    synced and hard-linked into place, so of several processes starting at once one wins and the
    others (``FileExistsError`` swallowed) read its file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def readable_by_others(st: os.stat_result) -> bool:
    """Whether the group or others have any permission on the file."""
    return bool(st.st_mode & (stat.S_IRWXG | stat.S_IRWXO))
