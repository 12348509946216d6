"""Reading a job's stored output, once or following it until the job ends (``logs -f``)."""

from __future__ import annotations

import time
from typing import Any, TextIO

__all__ = ["follow_logs", "read_logs"]

POLL = 0.25


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def read_logs(transport: Any, workspace: str, name: str) -> str:
    """All of the job's stored output, as text."""
    parts, after = [], -1
    while True:
        out = transport.call("job_logs", workspace=workspace, name=name, after=after)
        parts.append(out["data"])
        if out["next"] == after or not out["data"]:
            break
        after = out["next"]
    return _decode(b"".join(parts))


def follow_logs(
    transport: Any,
    workspace: str,
    name: str,
    out: TextIO,
    timeout: float | None = None,
    clean: Any = None,
) -> str:
    """Write the job's output to ``out`` as it comes, until the job has ended and all of it is
    shown (or ``timeout`` seconds); returns what was shown. ``clean`` filters text for a terminal."""
    shown: list[bytes] = []
    after = -1
    end = None if timeout is None else time.monotonic() + timeout
    pending = b""
    while True:
        got = transport.call("job_logs", workspace=workspace, name=name, after=after)
        if got["data"]:
            data = pending + got["data"]
            # hold back a cut multi-byte character until the rest of it comes
            cut = len(data)
            while cut > 0 and cut > len(data) - 4 and (data[cut - 1] & 0xC0) == 0x80:
                cut -= 1
            if cut > 0 and data[cut - 1] >= 0xC0:
                cut -= 1
            else:
                cut = len(data)
            text = _decode(data[:cut])
            pending = data[cut:]
            out.write(clean(text) if clean else text)
            out.flush()
            shown.append(got["data"])
            after = got["next"]
            continue  # there may be more right away
        if got["done"]:
            break
        if end is not None and time.monotonic() >= end:
            break
        time.sleep(POLL)
    if pending:
        out.write(_decode(pending))
    return _decode(b"".join(shown))
