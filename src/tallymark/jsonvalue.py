"""The JSON encoding of logged values, shared by the SDK, the wire and the database.

JSON has no NaN or infinities, and JavaScript loses integers above 2**53. tallymark's rules:

- finite floats are JSON numbers; ``-0.0`` is written ``-0.0`` and read back with its sign;
- integers are JSON integers of any size and are read back exactly (as Python ``int``);
- NaN, +inf and -inf are written as the object ``{"$float": "NaN" | "Infinity" | "-Infinity"}``
  inside parameters, others and structured items; in metric columns (numbers only) the plain strings
  ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are accepted and produced.
- numpy scalars and arrays are turned into the Python numbers and lists they hold.

>>> dumps({"lr": float("nan"), "n": 2**60})
'{"lr": {"$float": "NaN"}, "n": 1152921504606846976}'
>>> loads(dumps([float("-inf"), -0.0]))
[-inf, -0.0]
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float_tag(value: float) -> dict[str, str]:
    if math.isnan(value):
        return {"$float": "NaN"}
    return {"$float": "Infinity" if value > 0 else "-Infinity"}


def unwrap(value: Any) -> Any:
    """numpy and friends as the Python numbers and lists they hold: anything with .tolist()
    (arrays) or .item() (scalars); anything else as it is."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return value


def _default(value: Any) -> Any:
    plain = unwrap(value)
    if plain is not value:
        return plain
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(
        f"values of type {type(value).__name__} cannot be logged; use numbers, strings, "
        "booleans, lists or dicts"
    )


def _tag_nonfinite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else _float_tag(value)
    if isinstance(value, dict):
        return {k: _tag_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_nonfinite(v) for v in value]
    return value


def to_plain(value: Any) -> Any:
    """Turn numpy values, tuples and sets into plain JSON-able Python values (NaN kept as float)."""
    return json.loads(json.dumps(value, default=_default, allow_nan=True))


def dumps(value: Any) -> str:
    """Encode a value with tallymark's JSON rules (see the module docstring)."""
    try:
        return json.dumps(value, allow_nan=False, default=_default, ensure_ascii=False)
    except ValueError:
        return json.dumps(_tag_nonfinite(to_plain(value)), allow_nan=False, ensure_ascii=False)


class TooDeep(ValueError):
    """A JSON text nests deeper than allowed; raised before any recursive parsing starts."""


# A JSON string (escapes included), matched without recursion, so brackets inside it are not counted.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(text: str | bytes) -> int:
    """How deep ``[``/``{`` nest in a JSON text, found by a linear scan that never recurses.

    ``json.loads`` recurses once per level and fails with ``RecursionError`` around 1,000 levels, so
    bodies from the network are measured with this first (see :func:`parse`). Brackets inside
    strings do not count; an unterminated string counts its brackets (the text is invalid anyway).
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b"[" not in data and b"{" not in data:
        return 0
    if b'"' in data:
        data = _STRING.sub(b"", data)
    brackets = data.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    import numpy as np

    step = np.zeros(256, np.int64)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    return max(0, int(np.cumsum(step[np.frombuffer(brackets, np.uint8)]).max()))


def check_depth(text: str | bytes, limit: int, what: str = "the JSON body") -> None:
    """Raise :class:`TooDeep` when ``text`` nests deeper than ``limit`` levels."""
    depth = nesting_depth(text)
    if depth > limit:
        raise TooDeep(f"{what} nests {depth:,} levels deep; the limit is {limit}")


def parse(text: str | bytes, limit: int, what: str = "the JSON body") -> Any:
    """``json.loads`` for text from outside: :class:`TooDeep` past ``limit`` levels, never a
    ``RecursionError``; other bad JSON raises ``ValueError`` as ``json.loads`` does."""
    check_depth(text, limit, what)
    return json.loads(text)


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$float" in obj and obj["$float"] in _NONFINITE:
        return _NONFINITE[obj["$float"]]
    return obj


def loads(text: str | bytes) -> Any:
    """Decode text written by :func:`dumps`, restoring NaN and infinities."""
    return json.loads(text, object_hook=_hook)


def decode_tagged(value: Any) -> Any:
    """Restore ``{"$float": ...}`` tags in an already-parsed JSON value."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get("$float") in _NONFINITE:
            return _NONFINITE[value["$float"]]
        return {k: decode_tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_tagged(v) for v in value]
    return value


def metric_number(value: Any) -> float | int:
    """Read one metric value from JSON: a number or one of "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, str):
        if value in _NONFINITE:
            return _NONFINITE[value]
        raise ValueError(f"{value!r} is not a number (use a number, 'NaN', 'Infinity' or '-Infinity')")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return value


def restore_series(series: dict[str, Any]) -> dict[str, Any]:
    """Turn a metric series read as JSON back into numbers ("NaN" strings → float NaN), in place.

    Series flagged ``"nonfinite": false`` by the server are all numbers already and are left as is.
    """
    if series.get("nonfinite", True):
        series["values"] = [metric_number(v) if isinstance(v, str) else v for v in series["values"]]
    return series


def metric_json(value: float | int) -> Any:
    """Write one metric value for JSON: non-finite floats become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
