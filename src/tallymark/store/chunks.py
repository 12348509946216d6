"""Columnar metric chunks: the points of one (experiment, metric) as typed little-endian arrays.

A chunk holds parallel arrays: ``steps`` (int64), ``timestamps`` (int64 ms), ``values`` (float64,
bit-exact: NaN, ±inf and -0.0 survive), ``epochs`` (int64, ``NO_EPOCH`` where none was given) and,
only when some value was an integer, ``int_values`` (int64) with ``int_mask`` (uint8) so integers
beyond 2**53 come back exactly.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np

NO_EPOCH = np.iinfo(np.int64).min
I8 = np.dtype("<i8")
F8 = np.dtype("<f8")
U1 = np.dtype("|u1")
DTYPES: dict[str, np.dtype[Any]] = {"<i8": I8, "<f8": F8, "|u1": U1}


@dataclass
class Series:
    """Points of one metric, in arrival order."""

    name: str
    steps: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray
    epochs: np.ndarray | None = None
    int_values: np.ndarray | None = None
    int_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def take(self, index: np.ndarray | slice) -> Series:
        return Series(
            self.name,
            self.steps[index],
            self.values[index],
            self.timestamps[index],
            None if self.epochs is None else self.epochs[index],
            None if self.int_values is None else self.int_values[index],
            None if self.int_mask is None else self.int_mask[index],
        )

    def python_values(self) -> list[float | int]:
        """Values as Python numbers, integers restored where they were logged as integers."""
        out: list[float | int] = self.values.tolist()
        if self.int_mask is not None and self.int_values is not None:
            ints = self.int_values.tolist()
            for i in np.flatnonzero(self.int_mask).tolist():
                out[i] = ints[i]
        return out

    def python_epochs(self) -> list[int | None]:
        if self.epochs is None:
            return [None] * len(self)
        return [None if e == NO_EPOCH else e for e in self.epochs.tolist()]


def concat(name: str, parts: list[Series]) -> Series:
    if not parts:
        empty_i = np.zeros(0, I8)
        return Series(name, empty_i, np.zeros(0, F8), empty_i.copy())
    if len(parts) == 1:
        return parts[0]
    n = [len(p) for p in parts]
    epochs = None
    if any(p.epochs is not None for p in parts):
        epochs = np.concatenate(
            [
                p.epochs if p.epochs is not None else np.full(k, NO_EPOCH, I8)
                for p, k in zip(parts, n, strict=True)
            ]
        )
    int_values = int_mask = None
    if any(p.int_mask is not None for p in parts):
        int_values = np.concatenate(
            [
                p.int_values if p.int_values is not None else np.zeros(k, I8)
                for p, k in zip(parts, n, strict=True)
            ]
        )
        int_mask = np.concatenate(
            [p.int_mask if p.int_mask is not None else np.zeros(k, U1) for p, k in zip(parts, n, strict=True)]
        )
    return Series(
        name,
        np.concatenate([p.steps for p in parts]),
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
        epochs,
        int_values,
        int_mask,
    )


def to_row(series: Series) -> dict[str, object]:
    """Column values of a metric_chunks row (without ids)."""
    return {
        "count": len(series),
        "step_min": int(series.steps.min()),
        "step_max": int(series.steps.max()),
        "steps": series.steps.astype(I8, copy=False).tobytes(),
        "epochs": None if series.epochs is None else series.epochs.astype(I8, copy=False).tobytes(),
        "timestamps": series.timestamps.astype(I8, copy=False).tobytes(),
        "values": series.values.astype(F8, copy=False).tobytes(),
        "int_values": None if series.int_values is None else series.int_values.astype(I8).tobytes(),
        "int_mask": None if series.int_mask is None else series.int_mask.astype(U1).tobytes(),
    }


def from_row(name: str, row: object) -> Series:
    def arr(data: bytes | None, dtype: np.dtype) -> np.ndarray | None:
        return None if data is None else np.frombuffer(bytes(data), dtype)

    return Series(
        name,
        arr(row.steps, I8),  # type: ignore[attr-defined,arg-type]
        arr(row.values, F8),  # type: ignore[attr-defined,arg-type]
        arr(row.timestamps, I8),  # type: ignore[attr-defined,arg-type]
        arr(row.epochs, I8),  # type: ignore[attr-defined]
        arr(row.int_values, I8),  # type: ignore[attr-defined]
        arr(row.int_mask, U1),  # type: ignore[attr-defined]
    )


def unpack(b64: str, dtype: str) -> np.ndarray:
    """Decode a packed column sent as base64 of little-endian bytes."""
    dt = DTYPES[dtype]
    try:
        raw = binascii.a2b_base64(b64, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"packed column is not valid base64: {exc}") from None
    if len(raw) % dt.itemsize:
        raise ValueError(f"packed column of {len(raw)} bytes is not a whole number of {dtype} items")
    return np.frombuffer(raw, dt)
