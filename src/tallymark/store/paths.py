"""Path safety for every path that comes from a user: logical paths, file names, folder uploads.

A *logical path* names a file inside an artifact, an asset set or a download folder: ``data/train.csv``.
It is always relative, uses ``/`` as its only separator, and must never be able to leave the folder
it is joined to, on any operating system or behind any layer that decodes it once more. So
:func:`clean_logical_path` refuses (it never silently "fixes") anything that could be read as a
traversal or as something else than a plain relative name:

* ``..`` and ``.`` segments, and segments made only of dots and spaces (Windows drops trailing dots
  and spaces, so ``".. "`` would become ``..`` there);
* percent-encoded dots, slashes, backslashes or control characters (``%2e%2e``, ``%2f``, ``%5c``,
  ``%00``), at any depth of encoding (``%252e%252e``, ``%25252f`` …), and the overlong UTF-8 forms
  of ``.``, ``/`` and ``\\`` (``%c0%ae``, ``%c0%af``, ``%c1%9c``, ``%e0%80%ae``);
* backslashes anywhere;
* absolute paths: ``/x``, ``//server/share``, ``C:\\x``, ``C:/x``, ``C:x`` (a drive-letter prefix on
  any segment is refused);
* empty segments (``a//b``, a trailing ``/``): the cleaned path is the canonical name, so exactly one
  spelling is accepted;
* NUL and every other control character (C0, DEL, C1), Unicode line/paragraph separators and bidi
  overrides (which make a name display differently from what it is), and lone surrogates;
* paths that become one of the above under Unicode compatibility normalisation (NFKC), e.g. the
  fullwidth ``．．／``;
* segments longer than 255 UTF-8 bytes and paths longer than 4096 bytes.

The accepted path is returned in Unicode NFC, so a name typed on macOS (NFD) and on Linux compare
equal.

:func:`safe_join` cleans a logical path, joins it to a root, resolves symlinks and refuses a result
outside the root. :func:`safe_walk` lists a folder for upload and **refuses** (raises
:class:`UnsafePath` before returning anything, so nothing is uploaded) a folder containing a symlink
that points outside it, a broken symlink, a symlink loop, a special file (FIFO, socket, device) or a
file whose name is not a safe logical path. Failing closed was chosen over skipping with an error
list: a folder upload that silently leaves files out produces an artifact version that looks complete
and is not.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

__all__ = ["UnsafePath", "WalkEntry", "clean_logical_path", "safe_join", "safe_walk"]

MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 4096
_MAX_DECODE_DEPTH = 16

# After any number of decodings, one of these percent-escapes would turn into a dot, a slash, a
# backslash or a control character (or an overlong UTF-8 spelling of ., / or \).
_DANGEROUS_ESCAPE = re.compile(
    r"%(?:2e|2f|5c|[01][0-9a-f]|7f|c0%a[ef]|c1%9c|e0%80%a[ef]|c0%5c|c1%1c)",
    re.IGNORECASE,
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class UnsafePath(ValueError):
    """A user-given path could leave its root (or could be read differently by another layer)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"unsafe path {path!r}: {reason}")


def _check_chars(original: str, text: str) -> None:
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc":
            raise UnsafePath(original, f"control character U+{ord(ch):04X} (NUL, newline, tab … are refused)")
        if cat == "Cs":
            raise UnsafePath(original, "lone surrogate (not valid Unicode text)")
        if cat in ("Zl", "Zp"):
            raise UnsafePath(original, f"line or paragraph separator U+{ord(ch):04X}")
        if ch in _BIDI_CONTROLS:
            raise UnsafePath(original, f"bidirectional control character U+{ord(ch):04X}")


def _check_structure(original: str, text: str) -> list[str]:
    """Structural rules on one spelling of the path; returns its segments."""
    if text == "":
        raise UnsafePath(original, "empty path")
    if "\\" in text:
        raise UnsafePath(original, "backslash (use / as the only separator)")
    if text.startswith("/"):
        raise UnsafePath(original, "absolute path (it must be relative)")
    segments = text.split("/")
    for seg in segments:
        if seg == "":
            raise UnsafePath(original, "empty path segment ('//' or a trailing '/')")
        if seg == ".":
            raise UnsafePath(original, "'.' segment")
        if seg == "..":
            raise UnsafePath(original, "'..' segment (parent directory)")
        if set(seg) <= {".", " "}:
            raise UnsafePath(original, f"segment {seg!r} made only of dots and spaces")
        if _DRIVE.match(seg):
            raise UnsafePath(original, "Windows drive prefix (absolute or drive-relative path)")
    return segments


def clean_logical_path(p: str) -> str:
    """Return ``p`` as a canonical relative POSIX path, or raise :class:`UnsafePath`.

    See the module docstring for the exact rules. The result uses ``/`` separators, has no empty,
    ``.`` or ``..`` segments and is in Unicode NFC; cleaning it again returns it unchanged.
    """
    if not isinstance(p, str):
        raise UnsafePath(p, f"a path must be a str, not {type(p).__name__}")
    _check_chars(p, p)
    # Percent-encoding, at every depth: a layer that decodes once more must not see a traversal.
    layer = p
    for _ in range(_MAX_DECODE_DEPTH):
        if _DANGEROUS_ESCAPE.search(layer):
            raise UnsafePath(p, "percent-encoded dot, slash, backslash or control character")
        decoded = unquote(layer, errors="replace") if "%" in layer else layer
        if decoded == layer:
            break
        layer = decoded
    else:
        raise UnsafePath(p, "too many levels of percent-encoding")
    nfc = unicodedata.normalize("NFC", p)
    segments = _check_structure(p, nfc)
    # Compatibility forms (fullwidth dots and solidus, …) must not spell a traversal either.
    nfkc = unicodedata.normalize("NFKC", p)
    if nfkc != nfc:
        _check_chars(p, nfkc)
        _check_structure(p, nfkc)
    try:
        encoded = nfc.encode("utf-8")
    except UnicodeEncodeError as exc:  # pragma: no cover - lone surrogates are refused above
        raise UnsafePath(p, "not encodable as UTF-8") from exc
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafePath(p, f"longer than {MAX_PATH_BYTES} bytes")
    for seg in segments:
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise UnsafePath(p, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return nfc


def safe_join(root: Path, logical: str) -> Path:
    """Join a user-given logical path to ``root``; the result is resolved and inside ``root``.

    Symlinks (in ``root`` itself and in the existing part of the joined path) are followed; if the
    resolved path is not ``root`` or below it, :class:`UnsafePath` is raised. The returned path is the
    resolved one, so writing to it cannot be redirected by a symlink that was checked. (A symlink
    created by another process *after* this call is not covered: do not share a download folder with
    an adversary.)
    """
    cleaned = clean_logical_path(logical)
    base = _resolve(Path(root), root)
    target = _resolve(base.joinpath(*cleaned.split("/")), logical)
    if target == base or not target.is_relative_to(base):
        raise UnsafePath(logical, f"resolves to {str(target)!r}, outside {str(base)!r} (a symlink escapes)")
    return target


def _resolve(path: Path, shown: object) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11/3.12 raise RuntimeError on a symlink loop
        raise UnsafePath(shown, f"cannot resolve ({exc}); a symlink loop?") from None


class WalkEntry(NamedTuple):
    """One regular file of a folder upload."""

    path: Path  # the file on disk (symlinks inside the folder resolved)
    logical_path: str  # relative to the folder, cleaned with clean_logical_path
    size: int


def safe_walk(folder: Path) -> list[WalkEntry]:
    """Every regular file under ``folder``, sorted by logical path, or :class:`UnsafePath`.

    Symlinks whose target lies inside ``folder`` are followed (a linked file is listed under the
    link's name; a linked directory is walked under the link's name). The whole folder is checked
    before anything is returned; refused, with the offending entry named:

    * a symlink (to a file or a directory) resolving outside ``folder``;
    * a broken symlink, and a directory symlink that points at one of its own ancestors (a loop);
    * anything that is neither a regular file nor a directory (FIFO, socket, device);
    * a file or directory name that is not a safe logical path (see :func:`clean_logical_path`).
    """
    base = _resolve(Path(folder), folder)
    if not base.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is not a directory")
    entries: list[WalkEntry] = []

    def walk(real_dir: Path, logical_prefix: str, ancestors: frozenset[Path]) -> None:
        with os.scandir(real_dir) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            logical = f"{logical_prefix}{child.name}"
            shown = f"{folder}/{logical}"
            try:
                logical = clean_logical_path(logical)
            except UnsafePath as exc:
                raise UnsafePath(shown, f"file name refused: {exc.reason}") from None
            path = Path(child.path)
            if child.is_symlink():
                resolved = _resolve(path, shown)
                if not resolved.is_relative_to(base):
                    raise UnsafePath(shown, f"symlink points outside the folder (to {str(resolved)!r})")
                if not resolved.exists():
                    raise UnsafePath(shown, "broken symlink (or a symlink loop)")
                path = resolved
            st = path.stat()
            if stat.S_ISDIR(st.st_mode):
                if path in ancestors or path == base:
                    raise UnsafePath(shown, "symlink loop (points at one of its own parent folders)")
                walk(path, logical + "/", ancestors | {path})
            elif stat.S_ISREG(st.st_mode):
                entries.append(WalkEntry(path, logical, st.st_size))
            else:
                raise UnsafePath(shown, "not a regular file or directory (FIFO, socket or device)")

    walk(base, "", frozenset({base}))
    entries.sort(key=lambda e: e.logical_path)
    return entries
