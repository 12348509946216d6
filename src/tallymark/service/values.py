"""Parameters, others and structured items: encoding, typed copies for queries, validation."""

from __future__ import annotations

import math
from typing import Any

from tallymark import jsonvalue, storable
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


def validate_item(kind: str, name: str, data: Any) -> Any:
    """Check the shape of a structured item (the shared rule); returns the normalised data."""
    try:
        return storable.validate_item(kind, name, data)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
