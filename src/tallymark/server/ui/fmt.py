"""How values read in the UI: parameters exactly, metrics to 6 significant digits, times in UTC.

>>> metric(0.123456789), metric(float("nan")), param("adam"), param([64, 32]), size(1536)
('0.123457', 'NaN', 'adam', '[64, 32]', '1.5 KiB')
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any


def param(value: Any) -> str:
    """A parameter or "other" value as the user logged it: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except ValueError:
        return str(value)


def metric(value: Any) -> str:
    """A metric value, short: 6 significant digits; integers in full."""
    if value is None:
        return ""
    if isinstance(value, str):  # "NaN" / "Infinity" from the metric API
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    return str(value)


def exact(value: Any) -> str:
    """The full value, for a tooltip."""
    return param(value)


def when(ms: int | None) -> str:
    """``2024-05-01 12:03`` (UTC) from milliseconds since the epoch."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    if start_ms is None or end_ms is None:
        return ""
    s = max(0, (end_ms - start_ms) // 1000)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def number(n: int) -> str:
    return f"{n:,}"
