"""Client-side batch encoding: buffered points become packed little-endian columns.

A batch on the wire (and in journals and offline archives) is the JSON body of
``POST /api/v1/experiments/{key}/batch``; metric columns are ``{"dtype", "b64"}`` objects.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Columns:
    """Points of one metric as Python sequences, ready to pack."""

    name: str
    values: tuple[Any, ...]
    steps: tuple[int, ...]
    epochs: tuple[Any, ...]
    timestamps: tuple[float, ...]  # seconds, as time.time() returns
    has_int: bool = False

    def arrays(self) -> dict[str, Any]:
        """numpy arrays for each column (epochs/int columns only when present)."""
        import numpy as np

        out: dict[str, Any] = {
            "steps": np.array(self.steps, dtype="<i8"),
            "values": np.array(self.values, dtype="<f8"),
            "timestamps": (np.array(self.timestamps, dtype="<f8") * 1000.0).astype("<i8"),
        }
        if any(e is not None for e in self.epochs):
            no_epoch = np.iinfo(np.int64).min
            out["epochs"] = np.array([no_epoch if e is None else e for e in self.epochs], dtype="<i8")
        if self.has_int:
            mask = np.array([type(v) is int for v in self.values], dtype="|u1")
            out["int_mask"] = mask
            out["int_values"] = np.array([v if type(v) is int else 0 for v in self.values], dtype="<i8")
        return out

    def packed(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for col, arr in self.arrays().items():
            out[col] = {"dtype": arr.dtype.str if arr.dtype.str != "|u1" else "|u1",
                        "b64": base64.b64encode(arr.tobytes()).decode("ascii")}
        return out


@dataclass
class Batch:
    """Everything one send carries."""

    batch_id: str
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    metrics: list[Columns] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    end: bool = False

    def empty(self) -> bool:
        return not (self.name is not None or self.params or self.others or self.tags or self.metrics
                    or self.items or self.end)

    def points(self) -> int:
        return sum(len(m.steps) for m in self.metrics)

    def head(self) -> dict[str, Any]:
        """The batch body without metric columns."""
        import json

        from tallymark import jsonvalue

        body: dict[str, Any] = {"batch_id": self.batch_id}
        if self.name is not None:
            body["name"] = self.name
        for k in ("params", "others", "tags", "items"):
            v = getattr(self, k)
            if v:
                body[k] = v
        if self.end:
            body["end"] = True
        # Tag NaN/inf the JSON way; the server restores them.
        return json.loads(jsonvalue.dumps(body)) if body.keys() - {"batch_id", "end"} else body

    def body(self) -> dict[str, Any]:
        """The full JSON body (metrics packed) for HTTP, journals and offline archives."""
        body = self.head()
        if self.metrics:
            body["metrics"] = [m.packed() for m in self.metrics]
        return body
