"""Parameters, others and structured items: encoding, typed copies for queries, validation."""

from __future__ import annotations

import math
from typing import Any

from tallymark import jsonvalue
from tallymark.service.errors import Invalid, TooLarge
from tallymark.storable import value_problem


def check_value(what: str, value: Any) -> None:
    """:class:`Invalid` for a value the store cannot hold (the rule in :mod:`tallymark.storable`)."""
    problem = value_problem(value)
    if problem is not None:
        raise Invalid(f"{what} cannot be stored: {problem}")


def encode_value(what: str, value: Any, limit: int) -> dict[str, Any]:
    """JSON text plus the typed copies the query language compares against."""
    value = jsonvalue.decode_tagged(value)
    check_value(what, value)
    text = jsonvalue.dumps(value)
    if len(text.encode()) > limit:
        raise TooLarge(f"{what} is {len(text.encode()):,} bytes encoded; the limit is {limit:,} bytes")
    num = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
        num = f if math.isfinite(f) else None
    if isinstance(value, str):
        vtext = value.replace("\x00", "")  # the query copy: PostgreSQL text cannot hold NUL
    elif isinstance(value, bool):
        vtext = "true" if value else "false"
    elif value is None:
        vtext = None
    elif isinstance(value, (int, float)):
        vtext = text
    else:
        vtext = text
    return {"value_json": text, "value_num": num, "value_text": vtext}


def _numbers(what: str, seq: Any, allow_nan: bool = True) -> list[float | int]:
    if not isinstance(seq, list):
        raise Invalid(f"{what} must be a list of numbers")
    out = []
    for i, v in enumerate(seq):
        v = jsonvalue.decode_tagged(v)
        if isinstance(v, str):
            try:
                v = jsonvalue.metric_number(v)
            except ValueError as exc:
                raise Invalid(f"{what}[{i}]: {exc}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Invalid(f"{what}[{i}] is {v!r}, not a number")
        if not allow_nan and isinstance(v, float) and math.isnan(v):
            raise Invalid(f"{what}[{i}] is NaN, which is not allowed here")
        out.append(v)
    return out


def validate_item(kind: str, name: str, data: Any) -> Any:
    """Check the shape of a structured item; returns the normalised data."""
    where = f"{kind.replace('_', ' ')} {name!r}"
    if kind == "confusion_matrix":
        if not isinstance(data, dict) or not isinstance(data.get("matrix"), list):
            raise Invalid(f"{where} needs a 'matrix': a list of rows of counts")
        rows = data["matrix"]
        n = len(rows)
        if n == 0 or n > 1000:
            raise Invalid(f"{where}: the matrix must have between 1 and 1000 rows")
        matrix = []
        for r, row in enumerate(rows):
            vals = _numbers(f"{where} row {r}", row, allow_nan=False)
            if len(vals) != n:
                raise Invalid(f"{where}: the matrix must be square; row {r} has {len(vals)} cells, not {n}")
            if any(v < 0 for v in vals):
                raise Invalid(f"{where}: counts may not be negative (row {r})")
            matrix.append(vals)
        labels = data.get("labels")
        if labels is None:
            labels = [str(i) for i in range(n)]
        if not isinstance(labels, list) or len(labels) != n or not all(isinstance(x, str) for x in labels):
            raise Invalid(f"{where}: 'labels' must be {n} strings, one per row")
        title = data.get("title") or "Confusion Matrix"
        return {"matrix": matrix, "labels": labels, "title": str(title)}
    if kind == "curve":
        if not isinstance(data, dict):
            raise Invalid(f"{where} needs 'x' and 'y' lists")
        x = _numbers(f"{where} x", data.get("x"))
        y = _numbers(f"{where} y", data.get("y"))
        if len(x) != len(y):
            raise Invalid(f"{where}: x has {len(x)} values but y has {len(y)}")
        return {"x": x, "y": y}
    if kind == "table":
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise Invalid(f"{where} needs 'columns' and 'rows'")
        cols = data.get("columns")
        if cols is not None and not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            raise Invalid(f"{where}: 'columns' must be a list of strings")
        for i, row in enumerate(data["rows"]):
            if not isinstance(row, list):
                raise Invalid(f"{where}: row {i} is not a list")
            if cols is not None and len(row) != len(cols):
                raise Invalid(f"{where}: row {i} has {len(row)} cells but there are {len(cols)} columns")
        return {"columns": cols, "rows": data["rows"]}
    if kind in ("code", "stdout"):
        key = "source" if kind == "code" else "text"
        if not isinstance(data, dict) or not isinstance(data.get(key), str):
            raise Invalid(f"{where} needs a '{key}' string")
        return data
    if not isinstance(data, (dict, list)):
        raise Invalid(f"{where} must be a JSON object or list")
    return data
