"""Metric points: validation of incoming columns, columnar appends, summaries and history reads.

Meaning of steps (documented in docs/metrics.md):
- points are kept exactly as logged, duplicates included; a history is returned ordered by step,
  points of equal step in the order they arrived;
- the summary's *last* value is the value at the greatest step (of equal steps, the one logged
  last), so a late, out-of-order point for an earlier step does not become "the current value";
- min and max ignore NaN; count counts every point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from tallymark import jsonvalue
from tallymark.service.errors import Invalid, NotFound
from tallymark.service.models import Packed, SeriesIn
from tallymark.store import chunks as ch
from tallymark.store.chunks import I8, NO_EPOCH, Series
from tallymark.store.lttb import lttb_indices
from tallymark.store.schema import metric_chunks, metric_summaries

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _column(value: Any, dtype: str, n: int | None, what: str) -> np.ndarray:
    if isinstance(value, Packed):
        if value.dtype != dtype:
            raise Invalid(f"{what}: packed dtype must be {dtype}, not {value.dtype}")
        try:
            arr = ch.unpack(value.b64, value.dtype)
        except ValueError as exc:
            raise Invalid(f"{what}: {exc}") from None
    else:
        try:
            arr = np.array(value, dtype=ch.DTYPES[dtype])
        except OverflowError:
            raise Invalid(f"{what}: a value does not fit in a 64-bit integer") from None
    if n is not None and arr.shape[0] != n:
        raise Invalid(f"{what} has {arr.shape[0]} entries but there are {n} steps")
    return arr


def series_from_input(s: SeriesIn, now: int, max_points: int) -> Series:
    """Validate one incoming series and turn it into typed arrays."""
    where = f"metric {s.name!r}"
    steps = _column(s.steps, "<i8", None, f"{where} steps")
    n = int(steps.shape[0])
    if n == 0:
        raise Invalid(f"{where} has no points")
    if n > max_points:
        raise Invalid(f"{where} has {n} points; a batch may carry at most {max_points}")
    int_values = int_mask = None
    if isinstance(s.values, Packed):
        values = _column(s.values, "<f8", n, f"{where} values")
        if (s.int_values is None) != (s.int_mask is None):
            raise Invalid(f"{where}: int_values and int_mask go together")
        if s.int_values is not None:
            int_values = _column(s.int_values, "<i8", n, f"{where} int_values")
            int_mask = _column(s.int_mask, "|u1", n, f"{where} int_mask")
    else:
        if len(s.values) != n:
            raise Invalid(f"{where} has {len(s.values)} values but {n} steps")
        floats = np.empty(n, ch.F8)
        ints: dict[int, int] = {}
        for i, raw in enumerate(s.values):
            try:
                v = jsonvalue.metric_number(raw)
            except ValueError as exc:
                raise Invalid(f"{where}, point {i}: {exc}") from None
            if isinstance(v, int):
                if not INT64_MIN <= v <= INT64_MAX:
                    raise Invalid(f"{where}, point {i}: integer {v} does not fit in 64 bits")
                ints[i] = v
                floats[i] = float(v)
            else:
                floats[i] = v
        values = floats
        if ints:
            int_values = np.zeros(n, I8)
            int_mask = np.zeros(n, ch.U1)
            idx = np.fromiter(ints.keys(), np.int64, len(ints))
            int_values[idx] = np.fromiter(ints.values(), np.int64, len(ints))
            int_mask[idx] = 1
    if s.timestamps is None:
        timestamps = np.full(n, now, I8)
    else:
        timestamps = _column(s.timestamps, "<i8", n, f"{where} timestamps")
    epochs = None
    if s.epochs is not None:
        if isinstance(s.epochs, Packed):
            epochs = _column(s.epochs, "<i8", n, f"{where} epochs")
        else:
            if len(s.epochs) != n:
                raise Invalid(f"{where} has {len(s.epochs)} epochs but {n} steps")
            epochs = np.array([NO_EPOCH if e is None else e for e in s.epochs], I8)
    return Series(s.name, steps, values, timestamps, epochs, int_values, int_mask)


def check_series(s: Series) -> None:
    """Check an in-process series: parallel columns of the right types and lengths."""
    n = len(s)
    if n == 0:
        raise Invalid(f"metric {s.name!r} has no points")
    for col, dt in (
        ("values", ch.F8),
        ("timestamps", I8),
        ("epochs", I8),
        ("int_values", I8),
        ("int_mask", ch.U1),
    ):
        arr = getattr(s, col)
        if arr is not None and (arr.shape != (n,) or arr.dtype != dt):
            raise Invalid(f"metric {s.name!r}: {col} must be {n} values of {dt}")


def _value_at(series: Series, i: int) -> float | int:
    if series.int_mask is not None and series.int_mask[i]:
        return int(series.int_values[i])  # type: ignore[index]
    return float(series.values[i])


def _float_or_none(v: float | int) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def append(conn: Connection, experiment_id: int, series: Series, chunk_points: int) -> None:
    """Append points to a metric: fill the tail chunk, then add new chunks; update the summary."""
    name = series.name
    summary = conn.execute(
        select(metric_summaries).where(
            metric_summaries.c.experiment_id == experiment_id, metric_summaries.c.name == name
        )
    ).first()
    n_chunks = 0 if summary is None else summary.chunks
    pending = series
    if n_chunks:
        tail = conn.execute(
            select(metric_chunks).where(
                metric_chunks.c.experiment_id == experiment_id,
                metric_chunks.c.name == name,
                metric_chunks.c.seq == n_chunks - 1,
            )
        ).first()
        # Row.count is tuple.count to a type checker; the column is read through the mapping.
        if tail is not None and tail._mapping["count"] < chunk_points:
            room = chunk_points - tail._mapping["count"]
            head, pending = pending.take(slice(0, room)), pending.take(slice(room, None))
            merged = ch.concat(name, [ch.from_row(name, tail), head])
            conn.execute(
                metric_chunks.update().where(metric_chunks.c.id == tail.id).values(**ch.to_row(merged))
            )
    rows: list[dict[str, Any]] = []
    for start in range(0, len(pending), chunk_points):
        piece = pending.take(slice(start, start + chunk_points))
        rows.append(
            {"experiment_id": experiment_id, "name": name, "seq": n_chunks + len(rows)} | ch.to_row(piece)
        )
    if rows:
        conn.execute(metric_chunks.insert(), rows)
    _update_summary(conn, experiment_id, series, summary, n_chunks + len(rows))


def _update_summary(conn: Connection, experiment_id: int, s: Series, old: Any, n_chunks: int) -> None:
    n = len(s)
    steps = s.steps
    last_i = n - 1 - int(np.argmax(steps[::-1]))  # last arrival among the greatest step
    new: dict[str, Any] = {"count": n if old is None else old.count + n, "chunks": n_chunks}
    if old is None or int(steps[last_i]) >= old.last_step:
        v = _value_at(s, last_i)
        epoch = None if s.epochs is None or s.epochs[last_i] == NO_EPOCH else int(s.epochs[last_i])
        new |= {
            "last_value": _float_or_none(v),
            "last_json": jsonvalue.dumps(v),
            "last_step": int(steps[last_i]),
            "last_epoch": epoch,
            "last_timestamp": int(s.timestamps[last_i]),
        }
    finite = ~np.isnan(s.values)
    if finite.any():
        idx = np.flatnonzero(finite)
        lo = int(idx[np.argmin(s.values[idx])])
        hi = int(idx[np.argmax(s.values[idx])])
        for kind, i, better in (("min", lo, lambda a, b: a < b), ("max", hi, lambda a, b: a > b)):
            v = _value_at(s, i)
            cur = None if old is None else getattr(old, f"{kind}_value")
            if cur is None or better(float(v), cur):
                new[f"{kind}_value"] = float(v)
                new[f"{kind}_json"] = jsonvalue.dumps(v)
    if old is None:
        conn.execute(metric_summaries.insert().values(experiment_id=experiment_id, name=s.name, **new))
    else:
        conn.execute(
            metric_summaries.update()
            .where(metric_summaries.c.experiment_id == experiment_id, metric_summaries.c.name == s.name)
            .values(**new)
        )


def read_series(conn: Connection, experiment_id: int, name: str) -> Series:
    """All points of one metric, ordered by step (stable: equal steps keep arrival order)."""
    rows = conn.execute(
        select(metric_chunks)
        .where(metric_chunks.c.experiment_id == experiment_id, metric_chunks.c.name == name)
        .order_by(metric_chunks.c.seq)
    ).all()
    if not rows:
        raise NotFound(f"the experiment has no metric named {name!r}")
    s = ch.concat(name, [ch.from_row(name, r) for r in rows])
    if len(s) > 1 and bool(np.any(s.steps[1:] < s.steps[:-1])):
        s = s.take(np.argsort(s.steps, kind="stable"))
    return s


def series_json(s: Series, total: int | None = None) -> dict[str, Any]:
    finite = bool(np.isfinite(s.values).all())
    if s.int_mask is None and finite:
        values: list[Any] = s.values.tolist()  # the common case, at C speed
    else:
        values = [jsonvalue.metric_json(v) for v in s.python_values()]
    if s.epochs is None or not bool((s.epochs != NO_EPOCH).any()):
        epochs: list[Any] = [None] * len(s)
    else:
        epochs = s.python_epochs()
    return {
        "name": s.name,
        "count": len(s) if total is None else total,
        "steps": s.steps.tolist(),
        "values": values,
        "timestamps": s.timestamps.tolist(),
        "epochs": epochs,
        "nonfinite": not finite,  # readers need to turn "NaN"/"Infinity" strings back into floats
    }


def read_many(conn: Connection, experiment_ids: list[int], name: str) -> dict[int, Series]:
    """One metric of many experiments in one query (experiments without it are left out)."""
    rows = conn.execute(
        select(metric_chunks)
        .where(metric_chunks.c.experiment_id.in_(experiment_ids), metric_chunks.c.name == name)
        .order_by(metric_chunks.c.experiment_id, metric_chunks.c.seq)
    ).all()
    parts: dict[int, list[Series]] = {}
    for r in rows:
        parts.setdefault(r.experiment_id, []).append(ch.from_row(name, r))
    out = {}
    for eid, ps in parts.items():
        s = ch.concat(name, ps)
        if len(s) > 1 and bool(np.any(s.steps[1:] < s.steps[:-1])):
            s = s.take(np.argsort(s.steps, kind="stable"))
        out[eid] = s
    return out


def downsample(s: Series, points: int) -> tuple[Series, int]:
    """At most ``points`` points chosen by LTTB over the finite values; returns (series, total)."""
    total = len(s)
    if total <= points:
        return s, total
    finite = np.flatnonzero(np.isfinite(s.values))
    keep = finite[lttb_indices(s.steps[finite].astype(np.float64), s.values[finite], points)]
    return s.take(keep), total


def summary_dict(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "count": row.count,
        "valueCurrent": jsonvalue.loads(row.last_json),
        "valueMin": None if row.min_json is None else jsonvalue.loads(row.min_json),
        "valueMax": None if row.max_json is None else jsonvalue.loads(row.max_json),
        "stepCurrent": row.last_step,
        "epochCurrent": row.last_epoch,
        "timestampCurrent": row.last_timestamp,
    }
