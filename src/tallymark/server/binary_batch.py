"""Decoding the binary batch framing (the SDK's fast path; format in docs/metrics.md).

``b"TMB1"`` + uint32 LE header length + JSON header (a batch body whose ``metrics`` entries are
``{"name", "count", "columns": [...]}``) + the columns' raw little-endian bytes, metric by metric.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from tallymark import jsonvalue
from tallymark.service.errors import Invalid, ServiceError
from tallymark.storable import MAX_DEPTH
from tallymark.store.chunks import F8, I8, U1, Series

COLUMN_DTYPES: dict[str, np.dtype[Any]] = {
    "steps": I8,
    "values": F8,
    "timestamps": I8,
    "epochs": I8,
    "int_values": I8,
    "int_mask": U1,
}
REQUIRED = ("steps", "values", "timestamps")


def decode(body: bytes) -> tuple[dict[str, Any], list[Series]]:
    if len(body) < 8 or body[:4] != b"TMB1":
        raise Invalid("not a tallymark binary batch (expected the TMB1 framing)")
    (hlen,) = struct.unpack_from("<I", body, 4)
    if 8 + hlen > len(body):
        raise Invalid("the binary batch header is truncated")
    try:
        head = jsonvalue.parse(body[8 : 8 + hlen], MAX_DEPTH, "the binary batch header")
    except jsonvalue.TooDeep as exc:
        raise ServiceError(str(exc)) from None
    except ValueError as exc:
        raise Invalid(f"the binary batch header is not JSON: {exc}") from None
    if not isinstance(head, dict) or not isinstance(head.get("metrics", []), list):
        raise Invalid("the binary batch header must be an object with a metrics list")
    offset = 8 + hlen
    series: list[Series] = []
    for i, spec in enumerate(head.pop("metrics", [])):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise Invalid(f"metrics[{i}] needs a name")
        n, cols = spec.get("count"), spec.get("columns")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0 or not isinstance(cols, list):
            raise Invalid(f"metric {spec['name']!r}: count must be a positive integer and columns a list")
        unknown = [c for c in cols if c not in COLUMN_DTYPES]
        if unknown or len(set(cols)) != len(cols) or not all(c in cols for c in REQUIRED):
            raise Invalid(
                f"metric {spec['name']!r}: columns must include {REQUIRED} and only "
                f"{tuple(COLUMN_DTYPES)}, each once"
            )
        if ("int_values" in cols) != ("int_mask" in cols):
            raise Invalid(f"metric {spec['name']!r}: int_values and int_mask go together")
        arrays: dict[str, np.ndarray] = {}
        for c in cols:
            size = n * COLUMN_DTYPES[c].itemsize
            if offset + size > len(body):
                raise Invalid(f"metric {spec['name']!r}: column {c} is truncated")
            arrays[c] = np.frombuffer(body, COLUMN_DTYPES[c], n, offset)
            offset += size
        series.append(
            Series(
                spec["name"],
                arrays["steps"],
                arrays["values"],
                arrays["timestamps"],
                arrays.get("epochs"),
                arrays.get("int_values"),
                arrays.get("int_mask"),
            )
        )
    if offset != len(body):
        raise Invalid(f"{len(body) - offset} unexpected bytes after the last column")
    return head, series
