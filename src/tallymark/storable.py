"""What the store can hold: one rule for logged values and names, shared by the SDK and the server.

The SDK applies it when a value is logged (a refused value is warned about and dropped, the rest of
the batch goes on); the service layer applies it again before any write (a batch carrying such a
value is answered 422 as a whole and nothing of it is written). Both import this module, so a value
the SDK lets through is one the server accepts: no batch can become a poison pill that is refused
on every retry.

A value can be stored when:

- it is ``None``, a bool, a float (NaN and ±inf included, see :mod:`tallymark.jsonvalue`), a string,
  or a list/dict of such values (tuples, sets and numpy values count as the lists/numbers they hold);
- every integer in it has a float64 magnitude: below about 1.8e308 (``10**400`` is refused; log
  such a number as a string). Integers are stored exactly; queries compare them as floats;
- it nests at most :data:`MAX_VALUE_DEPTH` (48) lists/dicts deep. Request bodies may nest
  :data:`MAX_DEPTH` (64): the difference is room for the batch around the value;
- every string (and dict key) is valid Unicode: no lone surrogates such as ``"\\ud800"``.

Its encoded size is checked by the caller against ``max_value_bytes`` (1 MiB by default).

A name (parameter, metric, other, tag, experiment, file) is 1 to 500 characters, not blank, and
holds no control characters (C0 and C1 except tab, so no trailing ``"\\n"``), no line or paragraph
separators (U+2028, U+2029) and no lone surrogates.

>>> value_problem({"lr": 0.1, "layers": [64, 64]}) is None
True
>>> value_problem(10**400)
'an integer of about 401 digits is too large to store (the limit is about 1.8e308); log it as a string'
>>> name_problem("prod\\n")
"contains the control character '\\\\n'"
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from tallymark import jsonvalue

MAX_DEPTH = 64  # every JSON request body, the binary batch header, Comet bodies
MAX_VALUE_DEPTH = 48  # one logged value (parameter, other, item data)
MAX_NAME = 500
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ID = 2**31 - 1  # row ids are INTEGER columns: 32 bits on PostgreSQL

_CONTAINERS = (list, tuple, set, frozenset, dict)


def _digits(n: int) -> int:
    return int(abs(n).bit_length() * 0.30103) + 1


def _int_problem(n: int) -> str | None:
    try:
        float(n)
    except OverflowError:
        return (
            f"an integer of about {_digits(n)} digits is too large to store (the limit is about "
            "1.8e308); log it as a string"
        )
    return None


def _string_problem(s: str) -> str | None:
    if s.isascii():
        return None
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"the text holds {s[exc.start : exc.end]!r}, which is not valid Unicode (a lone surrogate)"
    return None


def value_problem(value: Any, max_depth: int = MAX_VALUE_DEPTH) -> str | None:
    """Why ``value`` cannot be stored, or None when it can. Never recurses (100k levels are fine).

    Types that cannot be logged at all (an ``object()``) are left to the encoder, which names them.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if v is None or isinstance(v, (bool, float)):
            continue
        if isinstance(v, int):
            problem = _int_problem(v)
        elif isinstance(v, str):
            problem = _string_problem(v)
        elif isinstance(v, _CONTAINERS):
            if depth + 1 > max_depth:
                return f"it nests more than {max_depth} lists/dicts deep"
            problem = None
            if isinstance(v, dict):
                for k in v:
                    if isinstance(k, str) and (problem := _string_problem(k)) is not None:
                        break
                    if isinstance(k, int) and not isinstance(k, bool):
                        problem = _int_problem(k)
                stack.extend((x, depth + 1) for x in v.values())
            else:
                stack.extend((x, depth + 1) for x in v)
        else:
            plain = jsonvalue.unwrap(v)
            if plain is not v:
                stack.append((plain, depth))
            problem = None
        if problem is not None:
            return problem
    return None


def name_problem(name: str, max_length: int | None = MAX_NAME) -> str | None:
    """Why ``name`` cannot be a name, or None when it can (see the module docstring)."""
    if not name or not name.strip():
        return "a name may not be empty or blank"
    if max_length is not None and len(name) > max_length:
        return f"a name has at most {max_length} characters, not {len(name):,}"
    return text_problem(name)


def text_problem(text: str) -> str | None:
    """Why ``text`` (a name, key, version, alias) holds characters no name may hold, or None."""
    if text.isascii() and text.isprintable():
        return None
    for ch in text:
        cat = unicodedata.category(ch)
        if (cat == "Cc" and ch != "\t") or cat in ("Zl", "Zp"):
            return f"contains the control character {ch!r}"
        if cat == "Cs":
            return f"contains {ch!r}, which is not valid Unicode (a lone surrogate)"
    return None


def fits_int64(n: int) -> bool:
    return INT64_MIN <= n <= INT64_MAX


# ----- structured items: the shape the server checks, checked by the SDK too (else a whole batch
# would be refused for one malformed curve) -----


def _numbers(what: str, seq: Any, allow_nan: bool = True) -> list[float | int]:
    if not isinstance(seq, list):
        raise ValueError(f"{what} must be a list of numbers")
    out = []
    for i, v in enumerate(seq):
        v = jsonvalue.decode_tagged(v)
        if isinstance(v, str):
            try:
                v = jsonvalue.metric_number(v)
            except ValueError as exc:
                raise ValueError(f"{what}[{i}]: {exc}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{what}[{i}] is {v!r}, not a number")
        if not allow_nan and isinstance(v, float) and math.isnan(v):
            raise ValueError(f"{what}[{i}] is NaN, which is not allowed here")
        out.append(v)
    return out


def validate_item(kind: str, name: str, data: Any) -> Any:
    """Check the shape of a structured item; returns the normalised data."""
    where = f"{kind.replace('_', ' ')} {name!r}"
    if kind == "confusion_matrix":
        if not isinstance(data, dict) or not isinstance(data.get("matrix"), list):
            raise ValueError(f"{where} needs a 'matrix': a list of rows of counts")
        rows = data["matrix"]
        n = len(rows)
        if n == 0 or n > 1000:
            raise ValueError(f"{where}: the matrix must have between 1 and 1000 rows")
        matrix = []
        for r, row in enumerate(rows):
            vals = _numbers(f"{where} row {r}", row, allow_nan=False)
            if len(vals) != n:
                raise ValueError(
                    f"{where}: the matrix must be square; row {r} has {len(vals)} cells, not {n}"
                )
            if any(v < 0 for v in vals):
                raise ValueError(f"{where}: counts may not be negative (row {r})")
            matrix.append(vals)
        labels = data.get("labels")
        if labels is None:
            labels = [str(i) for i in range(n)]
        if not isinstance(labels, list) or len(labels) != n or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{where}: 'labels' must be {n} strings, one per row")
        title = data.get("title") or "Confusion Matrix"
        return {"matrix": matrix, "labels": labels, "title": str(title)}
    if kind == "curve":
        if not isinstance(data, dict):
            raise ValueError(f"{where} needs 'x' and 'y' lists")
        x = _numbers(f"{where} x", data.get("x"))
        y = _numbers(f"{where} y", data.get("y"))
        if len(x) != len(y):
            raise ValueError(f"{where}: x has {len(x)} values but y has {len(y)}")
        return {"x": x, "y": y}
    if kind == "table":
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError(f"{where} needs 'columns' and 'rows'")
        cols = data.get("columns")
        if cols is not None and not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            raise ValueError(f"{where}: 'columns' must be a list of strings")
        for i, row in enumerate(data["rows"]):
            if not isinstance(row, list):
                raise ValueError(f"{where}: row {i} is not a list")
            if cols is not None and len(row) != len(cols):
                raise ValueError(f"{where}: row {i} has {len(row)} cells but there are {len(cols)} columns")
        return {"columns": cols, "rows": data["rows"]}
    if kind in ("code", "stdout"):
        key = "source" if kind == "code" else "text"
        if not isinstance(data, dict) or not isinstance(data.get(key), str):
            raise ValueError(f"{where} needs a '{key}' string")
        return data
    if not isinstance(data, (dict, list)):
        raise ValueError(f"{where} must be a JSON object or list")
    return data
