"""The server secret: 32 random bytes in a file outside the database (``Settings.secret_file``).

It keys the HMAC-SHA256 of pre-signed login links (:mod:`tallymark.service.presign`) and of CSRF
tokens (:mod:`tallymark.service.sessions`). It lives outside the database for the reason the audit
key does: someone who can read or write the database (a backup, a DBA) must not be able to mint a
login link. The file holds the bytes as 64 lowercase hex characters and a newline.

* Created on first use with mode 0600, written to a temporary file and hard-linked into place, so
  several processes starting at once on one home end up with one secret (the loser of the race
  reads the winner's file).
* Refused (:class:`SecretError`) when group or others may read it, or when it does not hold exactly
  64 hex characters: a silently regenerated secret would log nobody in and explain nothing.
* Several servers on one store must share the file (or the same bytes): a link issued through one
  is verified by another. Replacing the file invalidates every unused link and every CSRF token.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from tallymark.service.private_files import create_once, readable_by_others

__all__ = ["SecretError", "load_or_create_secret"]

_HEX_RE = re.compile(r"[0-9a-f]{64}")
_cache: dict[tuple[Path, int, int], bytes] = {}


class SecretError(RuntimeError):
    """The server secret file is unsafe or unreadable; the message says which file and why."""


def _load(path: Path) -> bytes:
    st = path.stat()
    if readable_by_others(st):
        raise SecretError(f"the server secret {path} can be read by others: chmod 600 it")
    cached = _cache.get((path, st.st_ino, st.st_mtime_ns))
    if cached is not None:
        return cached
    text = path.read_text().strip()
    if not _HEX_RE.fullmatch(text):
        raise SecretError(f"the server secret {path} is not 64 hex characters; delete it to make a new one")
    value = bytes.fromhex(text)
    _cache[(path, st.st_ino, st.st_mtime_ns)] = value
    return value


def load_or_create_secret(path: Path) -> bytes:
    """The 32 secret bytes in ``path``, created (mode 0600) when the file does not exist."""
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    create_once(path, secrets.token_hex(32) + "\n")
    return _load(path)
