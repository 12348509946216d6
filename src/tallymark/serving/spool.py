"""The prediction log's durable local spool: append-only segment files of checksummed frames.

Why a spool of its own and not the SDK journal: an endpoint must keep answering while the store is
down for hours, so what it logged meanwhile has to live on disk, bounded, and survive the process.

Layout of the spool directory::

    SPOOL_ID-SEQ.open    the segment being written (one per process, at most)
    SPOOL_ID-SEQ.seg     sealed segments: complete, fsynced, never written again; shipped in order
    rejected/            segments the store refused as invalid (kept, never shipped again)
    .lock                flock'ed by the process that owns the spool

A frame is ``MAGIC (4 bytes) | payload length (u32 LE) | crc32 of payload (u32 LE) | payload``;
the payload is an Arrow IPC stream of one record batch. Each frame is written with one ``write``
and ``fdatasync``'ed before the writer counts its rows as spooled. A process that dies mid-frame
leaves a torn tail in its ``.open`` segment: the next process to open the spool cuts the file at the
first frame that is short or fails its checksum, then seals it, so a torn frame is never shipped.

A segment is the unit of shipping: ``(spool_id, seq)`` names it and its contents never change once
sealed, so a chunk shipped twice (the answer lost, a crash before the delete) is recognised by the
store and ignored. Each process starts a fresh spool id, so sequence numbers never need to be
remembered across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FRAME_HEADER", "MAGIC", "Recovery", "Spool", "SpoolLocked", "read_frames"]

MAGIC = b"TMP1"
FRAME_HEADER = struct.Struct("<4sII")
MAX_FRAME = 256 << 20  # a header claiming more is garbage, not a frame
_NAME = re.compile(r"^([0-9a-f]{32})-([0-9]{12})\.(open|seg)$")


class SpoolLocked(RuntimeError):
    """Another live process owns this spool directory."""


@dataclass
class Recovery:
    """What opening the spool found left by an earlier process."""

    segments: int = 0  # sealed segments waiting to be shipped
    bytes: int = 0
    torn_segments: int = 0  # .open segments whose tail was cut
    torn_bytes: int = 0  # bytes cut from them (never shipped)


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """The complete, checksum-valid frames at the start of ``data`` and the length they cover
    (everything after it is a torn or corrupt tail)."""
    frames: list[bytes] = []
    pos = 0
    n = len(data)
    while pos + FRAME_HEADER.size <= n:
        magic, length, crc = FRAME_HEADER.unpack_from(data, pos)
        end = pos + FRAME_HEADER.size + length
        if magic != MAGIC or length > MAX_FRAME or end > n:
            break
        payload = data[pos + FRAME_HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        frames.append(payload)
        pos = end
    return frames, pos


def _frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segments on disk, owned by one process (an flock). Thread-safe: one writer thread appends
    and seals, one shipper thread reads and removes sealed segments."""

    def __init__(
        self,
        directory: Path,
        limit_bytes: int = 1 << 30,
        segment_bytes: int = 4 << 20,
        header: bytes | None = None,
    ) -> None:
        """``header``: a payload written as the first frame of every segment (what the frames
        after it are); a segment holding nothing after its header is not kept."""
        self.dir = Path(directory)
        self.header = header
        self.dir.mkdir(parents=True, exist_ok=True)
        self.limit_bytes = limit_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"the prediction spool {self.dir} is in use by another process") from None
        self.spool_id = uuid.uuid4().hex
        self._seq = 0
        self._mutex = threading.Lock()
        self._open_fd: int | None = None
        self._open_path: Path | None = None
        self._open_size = 0
        self._open_frames = 0
        self.used_bytes = 0
        self.recovery = self._recover()

    # -- opening ---------------------------------------------------------------------------------

    def _recover(self) -> Recovery:
        rec = Recovery()
        for p in sorted(self.dir.iterdir()):
            m = _NAME.match(p.name)
            if m is None:
                continue
            if m.group(3) == "open":
                data = p.read_bytes()
                frames, good = read_frames(data)
                if good < len(data):
                    rec.torn_segments += 1
                    rec.torn_bytes += len(data) - good
                    with p.open("r+b") as f:
                        f.truncate(good)
                        f.flush()
                        os.fsync(f.fileno())
                if len(frames) <= (1 if self.header is not None else 0):
                    p.unlink()
                    continue
                sealed = p.with_suffix(".seg")
                p.rename(sealed)
                p = sealed
            rec.segments += 1
            rec.bytes += p.stat().st_size
        if rec.torn_segments or rec.segments:
            _fsync_dir(self.dir)
        self.used_bytes = rec.bytes
        return rec

    # -- the writer's side -----------------------------------------------------------------------

    def append(self, payload: bytes) -> bool:
        """Write one frame and fdatasync it; False (nothing written) when the spool is full."""
        frame = _frame(payload)
        if self._open_fd is None and self.header is not None:
            frame = _frame(self.header) + frame
        with self._mutex:
            if self.used_bytes + len(frame) > self.limit_bytes:
                return False
            self.used_bytes += len(frame)
        if self._open_fd is None:
            self._open_path = self.dir / f"{self.spool_id}-{self._seq:012d}.open"
            self._seq += 1
            self._open_fd = os.open(self._open_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._open_size = 0
            self._open_frames = 0
        try:
            view = memoryview(frame)
            while view:
                written = os.write(self._open_fd, view)
                view = view[written:]
            os.fdatasync(self._open_fd)
        except OSError:
            # A disk error mid-frame: cut what this frame left, so the segment stays whole.
            with contextlib.suppress(OSError):
                os.ftruncate(self._open_fd, self._open_size)
            with self._mutex:
                self.used_bytes -= len(frame)
            raise
        self._open_size += len(frame)
        self._open_frames += 1
        if self._open_size >= self.segment_bytes:
            self.seal()
        return True

    @property
    def open_frames(self) -> int:
        return self._open_frames if self._open_fd is not None else 0

    def seal(self) -> None:
        """Close the open segment and make it shippable (a rename after its last fsync)."""
        if self._open_fd is None or self._open_path is None:
            return
        os.close(self._open_fd)
        self._open_fd = None
        self._open_path.rename(self._open_path.with_suffix(".seg"))
        _fsync_dir(self.dir)

    # -- the shipper's side ----------------------------------------------------------------------

    def sealed(self) -> list[Path]:
        """Sealed segments, oldest first (earlier processes' before this one's, each in order)."""
        found = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m is not None and m.group(3) == "seg":
                with contextlib.suppress(FileNotFoundError):
                    found.append(
                        (p.stat().st_mtime_ns if m.group(1) != self.spool_id else 1 << 62, p.name, p)
                    )
        return [p for _, _, p in sorted(found)]

    @staticmethod
    def name_of(path: Path) -> tuple[str, int]:
        m = _NAME.match(path.name)
        if m is None:
            raise ValueError(f"not a spool segment: {path.name}")
        return m.group(1), int(m.group(2))

    def read(self, path: Path) -> list[bytes]:
        """The frames of a sealed segment (a corrupt frame ends it: disk damage, not a torn write)."""
        frames, _ = read_frames(path.read_bytes())
        return frames

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        with self._mutex:
            self.used_bytes -= size

    def reject(self, path: Path) -> Path:
        """Move a segment the store refused out of the way (kept for a person, never re-shipped)."""
        dest_dir = self.dir / "rejected"
        dest_dir.mkdir(exist_ok=True)
        size = path.stat().st_size
        dest = dest_dir / path.name
        path.rename(dest)
        with self._mutex:
            self.used_bytes -= size
        return dest

    def close(self) -> None:
        self.seal()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
