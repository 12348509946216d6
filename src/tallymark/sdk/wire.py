"""Client-side batch encoding: buffered points become packed little-endian columns.

A batch on the wire (and in journals and offline archives) is the JSON body of
``POST /api/v1/experiments/{key}/batch``; metric columns are ``{"dtype", "b64"}`` objects.
"""

from __future__ import annotations

import base64
from array import array
from dataclasses import dataclass, field
from typing import Any

NO_EPOCH = -(2**63)


class MetricBuffer:
    """Points of one metric waiting to be sent, as typed arrays (no Python object per point).

    The training thread appends to ``s`` (steps), ``v`` (values), ``e`` (epochs), then — for
    int-aware buffers — ``iv``/``im``, and ``t`` (timestamps) last, so ``len(t)`` never exceeds the
    length of any other column and the sender can take the first ``len(t)`` points of each.
    """

    __slots__ = ("name", "s", "v", "e", "t", "iv", "im")

    def __init__(self, name: str, int_aware: bool) -> None:
        self.name = name
        self.s = array("q")
        self.v = array("d")
        self.e = array("q")
        self.t = array("d")
        self.iv = array("q") if int_aware else None
        self.im = array("B") if int_aware else None

    def take(self, limit: int) -> Columns | None:
        n = min(len(self.t), limit)
        if n == 0:
            return None
        cols = [self.s, self.v, self.e, self.t] + ([self.iv, self.im] if self.iv is not None else [])
        # Copy-then-delete: single C calls each, so points appended meanwhile stay for the next take.
        taken = [c[:n] for c in cols]  # type: ignore[index]
        for c in cols:
            del c[:n]  # type: ignore[union-attr]
        iv, im = (taken[4], taken[5]) if len(taken) > 4 else (None, None)
        return Columns(self.name, taken[0], taken[1], taken[2], taken[3], iv, im)


@dataclass
class Columns:
    """Points of one metric taken from a buffer, ready to pack."""

    name: str
    steps: array
    values: array
    epochs: array
    timestamps: array  # seconds, as time.time() returns
    int_values: array | None = None
    int_mask: array | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def arrays(self) -> dict[str, Any]:
        """numpy arrays for each column (epoch and int columns only when they carry something)."""
        import numpy as np

        out: dict[str, Any] = {
            "steps": np.frombuffer(self.steps, dtype=np.int64).astype("<i8", copy=False),
            "values": np.frombuffer(self.values, dtype=np.float64).astype("<f8", copy=False),
            "timestamps": (np.frombuffer(self.timestamps, dtype=np.float64) * 1000.0).astype("<i8"),
        }
        epochs = np.frombuffer(self.epochs, dtype=np.int64)
        if bool((epochs != NO_EPOCH).any()):
            out["epochs"] = epochs.astype("<i8", copy=False)
        if self.int_mask is not None and self.int_values is not None:
            mask = np.frombuffer(self.int_mask, dtype=np.uint8)
            if bool(mask.any()):
                out["int_mask"] = mask
                out["int_values"] = np.frombuffer(self.int_values, dtype=np.int64).astype("<i8", copy=False)
        return out

    def packed(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for col, arr in self.arrays().items():
            dtype = "|u1" if arr.dtype.itemsize == 1 else arr.dtype.str
            out[col] = {"dtype": dtype, "b64": base64.b64encode(arr.tobytes()).decode("ascii")}
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
        return not (
            self.name is not None
            or self.params
            or self.others
            or self.tags
            or self.metrics
            or self.items
            or self.end
        )

    def points(self) -> int:
        return sum(len(m) for m in self.metrics)

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

    def binary(self) -> bytes:
        """The batch in the binary framing of ``POST …/batch/binary`` (see docs/metrics.md):
        ``b"TMB1"``, a little-endian uint32 header length, the JSON header, then each metric's columns
        as raw little-endian arrays in the order the header lists them."""
        import json
        import struct

        head = self.head()
        parts: list[bytes] = []
        specs = []
        for m in self.metrics:
            arrays = m.arrays()
            specs.append({"name": m.name, "count": len(m), "columns": list(arrays)})
            parts.extend(a.tobytes() for a in arrays.values())
        head["metrics"] = specs
        header = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
        return b"".join([b"TMB1", struct.pack("<I", len(header)), header, *parts])

    def body(self) -> dict[str, Any]:
        """The full JSON body (metrics packed) for HTTP, journals and offline archives."""
        body = self.head()
        if self.metrics:
            body["metrics"] = [m.packed() for m in self.metrics]
        return body
