"""Applying a client batch: params, metrics, others, tags, items (and optionally ending the
experiment) in one transaction, at most once per ``batch_id``."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, select

from tallymark import jsonvalue
from tallymark.service import guard, metrics
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, TooLarge
from tallymark.service.experiments import experiment_row, require_running, visible_workspace
from tallymark.service.models import BatchIn, validated
from tallymark.service.store import Store, now_ms
from tallymark.service.values import check_value, encode_value, validate_item
from tallymark.store.chunks import Series
from tallymark.store.db import upsert
from tallymark.store.schema import batches, experiments, items, others, params, tags


def apply_batch(
    store: Store,
    caller: Caller,
    key: str,
    data: BatchIn | dict[str, Any],
    series: list[Series] | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """Apply one batch. A batch_id seen before is acknowledged and ignored (retries are safe).

    In-process callers (the SDK's local transport) may pass metric points already as typed
    ``series`` instead of encoding them into the batch. ``session``: an import session's token
    (see ``experiments.require_running``).

    One audit entry per applied batch (action ``experiment.log``), none for a replayed batch_id.
    """
    batch = validated(BatchIn, data)
    ws = visible_workspace(store, caller, key, "experiment.log")
    s = store.settings
    now = now_ms()
    # Validate and encode everything before the transaction starts: nothing is half-written.
    series = list(series or [])
    total = sum(len(x) for x in series)
    for x in series:
        metrics.check_series(x)
    for sin in batch.metrics:
        one = metrics.series_from_input(sin, now, s.max_points_per_batch)
        total += len(one)
        series.append(one)
    if total > s.max_points_per_batch:
        raise Invalid(f"the batch carries {total:,} points; the limit is {s.max_points_per_batch:,}")
    param_rows = [
        {"name": k} | encode_value(f"parameter {k!r}", v, s.max_value_bytes) for k, v in batch.params.items()
    ]
    other_rows = [
        {"name": k} | encode_value(f"other {k!r}", v, s.max_value_bytes) for k, v in batch.others.items()
    ]
    item_rows = []
    for it in batch.items:
        data = jsonvalue.decode_tagged(it.data)
        check_value(f"{it.kind} {it.name!r}", data)
        norm = validate_item(it.kind, it.name, data)
        text = jsonvalue.dumps(norm)
        if len(text) > s.max_item_bytes:
            raise TooLarge(f"{it.kind} {it.name!r} is {len(text):,} bytes; the limit is {s.max_item_bytes:,}")
        item_rows.append((it, text))

    digest = _digest_soon(batch, series, total)
    with guard.write(store, caller, "experiment.log", workspace=ws, object=("experiment", key)) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        eid = row.id
        seen = conn.execute(
            select(batches.c.batch_id).where(
                batches.c.experiment_id == eid, batches.c.batch_id == batch.batch_id
            )
        ).first()
        if seen is not None:
            w.changed = False  # a retried batch: acknowledged, not applied, not audited again
            return {"applied": False, "duplicate": True, "points": 0}
        require_running(row, session, conn)
        conn.execute(batches.insert().values(experiment_id=eid, batch_id=batch.batch_id, created_at=now))
        if batch.name is not None:
            conn.execute(experiments.update().where(experiments.c.id == eid).values(name=batch.name))
        if param_rows:
            _upsert_params(conn, eid, param_rows, now)
        if other_rows:
            upsert(
                conn,
                others,
                [r | {"experiment_id": eid, "updated_at": now} for r in other_rows],
                ["experiment_id", "name"],
                ["value_json", "value_num", "value_text", "updated_at"],
            )
        if batch.tags:
            upsert(
                conn,
                tags,
                [{"experiment_id": eid, "tag": t, "created_at": now} for t in dict.fromkeys(batch.tags)],
                ["experiment_id", "tag"],
                None,
            )
        for one in series:
            metrics.append(conn, eid, one, s.chunk_points)
        for it, text in item_rows:
            if it.overwrite:
                conn.execute(
                    delete(items).where(
                        items.c.experiment_id == eid, items.c.kind == it.kind, items.c.name == it.name
                    )
                )
            conn.execute(
                items.insert().values(
                    experiment_id=eid,
                    kind=it.kind,
                    name=it.name,
                    step=it.step,
                    data_json=text,
                    created_at=now,
                )
            )
        if batch.end:
            conn.execute(
                experiments.update().where(experiments.c.id == eid).values(status="ended", ended_at=now)
            )
        w.payload = digest.result()
    return {"applied": True, "duplicate": False, "points": total}


# Hashing a big batch's columns (~25 bytes a point) costs about as much as storing them; hashlib
# releases the GIL, so the digest is computed on another core while this thread writes the batch,
# and joined just before the audit entry is appended (same transaction, same hash).
_DIGESTS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tallymark-batch-digest")
_INLINE_POINTS = 4096


def _digest_soon(batch: BatchIn, series: list[Series], points: int) -> Future[bytes]:
    if points < _INLINE_POINTS:
        done: Future[bytes] = Future()
        done.set_result(batch_digest(batch, series))
        return done
    return _DIGESTS.submit(batch_digest, batch, series)


def batch_digest(batch: BatchIn, series: list[Series]) -> bytes:
    """The batch's audit payload: SHA-256 over its head (canonical JSON without the metrics) and
    each series' name and raw column bytes, so hashing costs about a memory copy, never a
    JSON encoding of the points. (The audit entry's ``payload_sha256`` is the SHA-256 of this.)"""
    h = hashlib.sha256()
    h.update(jsonvalue.dumps(batch.model_dump(mode="json", exclude={"metrics"})).encode("utf-8"))
    for s in series:
        h.update(b"\0" + s.name.encode("utf-8", "surrogatepass") + b"\0")
        for col in (s.steps, s.values, s.timestamps, s.epochs, s.int_values, s.int_mask):
            h.update(b"-" if col is None else np.ascontiguousarray(col).data)
    return h.digest()


def _upsert_params(conn: Connection, eid: int, rows: list[dict[str, Any]], now: int) -> None:
    """Parameters keep their current value plus the numeric min and max seen (Comet's summary)."""
    names = [r["name"] for r in rows]
    old = {
        r.name: r
        for r in conn.execute(
            select(params.c.name, params.c.value_num, params.c.min_json, params.c.max_json).where(
                params.c.experiment_id == eid, params.c.name.in_(names)
            )
        ).all()
    }
    out = []
    for r in rows:
        prev = old.get(r["name"])
        lo = hi = r["value_json"] if r["value_num"] is not None else None
        if prev is not None and r["value_num"] is not None:
            for attr, better in (("min_json", lambda a, b: a < b), ("max_json", lambda a, b: a > b)):
                if getattr(prev, attr) is not None:
                    pv = jsonvalue.loads(getattr(prev, attr))
                    if not better(r["value_num"], float(pv)):
                        if attr == "min_json":
                            lo = getattr(prev, attr)
                        else:
                            hi = getattr(prev, attr)
        elif prev is not None:
            lo, hi = prev.min_json, prev.max_json
        out.append(r | {"experiment_id": eid, "min_json": lo, "max_json": hi, "updated_at": now})
    upsert(
        conn,
        params,
        out,
        ["experiment_id", "name"],
        ["value_json", "value_num", "value_text", "min_json", "max_json", "updated_at"],
    )
