"""The store's side of the prediction log: chunks shipped by endpoints, ground truth, reading back.

A chunk is an Arrow IPC stream from a client, so it is parsed as untrusted bytes: bounded in size,
rows and columns, every buffer validated, only flat columns of plain types, the reserved columns
present with their types, request ids in the endpoint's id alphabet. It is stored re-encoded
(lz4: zstd costs 4x the CPU for 10 % less on float features), one row per chunk, keyed by
``(endpoint, spool_id, seq)``: the same chunk shipped again (a lost
answer, a restarted endpoint) changes nothing and writes no audit entry.

Ground truth is keyed by row id ``REQUEST_ID:ROW`` (a bare request id is row 0); the last label
sent for a row wins; a label may arrive before its prediction is shipped. Reading joins the labels
onto the predictions by row id, columnar (pyarrow), for the monitoring that builds on it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import Connection, and_, select

from tallymark import jsonvalue
from tallymark.service import guard, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, NotFound, TooLarge
from tallymark.service.store import Store, now_ms
from tallymark.store.db import upsert
from tallymark.store.schema import endpoints, ground_truth, prediction_chunks, workspaces

__all__ = [
    "MAX_CHUNK_BYTES",
    "MAX_CHUNK_ROWS",
    "MAX_LABELS",
    "label_rows",
    "log_chunk",
    "log_ground_truth",
    "predictions_page",
    "read_predictions",
]

MAX_CHUNK_BYTES = 64 << 20
MAX_CHUNK_ROWS = 1_000_000
MAX_CHUNK_COLUMNS = 10_000
MAX_LABELS = 100_000
MAX_LABEL_CHARS = 1_000
MAX_PAGE = 10_000
_REQ = r"[A-Za-z0-9._-]{1,64}"
REQUEST_ID = re.compile(rf"^{_REQ}$")
ROW_ID = re.compile(rf"^({_REQ})(?::([0-9]{{1,9}}))?$")
SPOOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
RESERVED_TYPES = {"request_id": "string", "row": "int", "at": "int64", "latency_us": "int64"}


def _missing(workspace: str, name: str) -> str:
    return f"no endpoint {name!r} in workspace {workspace!r}"


def _endpoint_id(conn: Connection, workspace: str, name: str) -> int:
    row = conn.execute(
        select(endpoints.c.id)
        .select_from(endpoints.join(workspaces, workspaces.c.id == endpoints.c.workspace_id))
        .where(endpoints.c.name == name, workspaces.c.name == workspace)
    ).first()
    if row is None:
        raise NotFound(_missing(workspace, name))
    return int(row[0])


def _ref(workspace: str, name: str) -> tuple[str, str]:
    return "endpoint", f"{workspace}/{name}"


# -- chunks ---------------------------------------------------------------------------------------


def parse_chunk(data: bytes) -> Any:
    """The validated table of a chunk's bytes, or :class:`Invalid` saying what is wrong."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    if len(data) > MAX_CHUNK_BYTES:
        raise TooLarge(f"a prediction chunk is at most {MAX_CHUNK_BYTES:,} bytes; this one is {len(data):,}")
    try:
        _check_messages(data)
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        schema = reader.schema
        if len(schema) > MAX_CHUNK_COLUMNS:
            raise Invalid(
                f"a prediction chunk has at most {MAX_CHUNK_COLUMNS} columns; this one {len(schema)}"
            )
        _check_schema(schema)
        batches: list[Any] = []
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if rows > MAX_CHUNK_ROWS or len(batches) >= 100_000:
                raise Invalid(f"a prediction chunk has at most {MAX_CHUNK_ROWS:,} rows")
            batch.validate(full=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=schema)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Invalid(f"the prediction chunk is not a readable Arrow IPC stream: {exc}") from None
    return table


def _check_messages(data: bytes) -> None:
    """Refuse compressed or dictionary batches before Arrow reads them: a compressed buffer states
    its own decompressed size, so 64 MiB of zstd could ask for far more memory than the chunk
    limit (the shipper never compresses; the store compresses what it keeps)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    for n, message in enumerate(pa.ipc.MessageReader.open_stream(pa.py_buffer(data))):
        if n > 100_001:
            raise Invalid("a prediction chunk has at most 100,000 record batches")
        if message.type == "dictionary batch":
            raise Invalid("a prediction chunk may not hold dictionary batches")
        if message.type == "record batch" and _batch_compressed(message.metadata.to_pybytes()):
            raise Invalid("a prediction chunk may not be compressed (send plain Arrow IPC)")


def _batch_compressed(meta: bytes) -> bool:
    """Whether the flatbuffer of a Message (RecordBatch header) sets RecordBatch.compression."""
    import struct

    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", meta, table)[0]
        size = struct.unpack_from("<H", meta, vtable)[0]
        at = vtable + 4 + 2 * index
        if at + 2 > vtable + size:
            return None
        off = struct.unpack_from("<H", meta, at)[0]
        return table + off if off else None

    try:
        root = struct.unpack_from("<I", meta, 0)[0]
        header = field(root, 2)  # Message: version, header_type, header, bodyLength, custom_metadata
        if header is None:
            return False
        batch = header + struct.unpack_from("<I", meta, header)[0]
        return field(batch, 3) is not None  # RecordBatch: length, nodes, buffers, compression
    except struct.error:
        raise Invalid("the prediction chunk holds a malformed Arrow message") from None


def _check_schema(schema: Any) -> None:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.types as t  # type: ignore[import-untyped, unused-ignore]

    names = schema.names
    if len(set(names)) != len(names):
        raise Invalid("the prediction chunk has duplicate column names")
    for col, kind in RESERVED_TYPES.items():
        if col not in names:
            raise Invalid(f"the prediction chunk has no {col!r} column")
        typ = schema.field(col).type
        ok = {
            "string": t.is_string(typ),
            "int": t.is_int32(typ) or t.is_int64(typ),
            "int64": t.is_int64(typ),
        }[kind]
        if not ok:
            raise Invalid(f"column {col!r} of the prediction chunk is {typ}; expected {kind}")
    for field in schema:
        typ = field.type
        if not (t.is_floating(typ) or t.is_integer(typ) or t.is_boolean(typ) or t.is_string(typ)):
            raise Invalid(
                f"column {field.name!r} of the prediction chunk is {typ}; expected a number, bool or string"
            )
        if len(field.name) > 300:
            raise Invalid("a column name of the prediction chunk is longer than 300 characters")
    del pa


def log_chunk(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    *,
    spool_id: str,
    seq: int,
    rows: int,
    first_at: int,
    last_at: int,
    data: bytes,
) -> dict[str, Any]:
    """Store one chunk an endpoint shipped from its spool (``prediction.log``); the same
    ``(spool_id, seq)`` again changes nothing (``{"stored": False}``)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

    lookups.allow_visible(caller, "prediction.log", workspace, _missing(workspace, name))
    if not SPOOL_ID.match(spool_id or ""):
        raise Invalid("spool_id must be 1-32 characters of [A-Za-z0-9_-]")
    if not 0 <= seq < 1 << 62:
        raise Invalid("seq must be a non-negative integer")
    table = parse_chunk(data)
    if table.num_rows != rows or rows == 0:
        raise Invalid(f"the chunk says {rows} rows but holds {table.num_rows}" if rows else "an empty chunk")
    at = table.column("at")
    if at.null_count or table.column("request_id").null_count or table.column("row").null_count:
        raise Invalid("request_id, row and at of a prediction chunk may not be null")
    lo, hi = pc.min(at).as_py(), pc.max(at).as_py()
    if (lo, hi) != (first_at, last_at):
        raise Invalid(f"the chunk says first_at={first_at}, last_at={last_at}; its rows span {lo}..{hi}")
    bad = pc.invert(pc.match_substring_regex(table.column("request_id"), f"^{_REQ}$"))
    if pc.any(bad).as_py():
        raise Invalid("a request_id of the prediction chunk is not 1-64 characters of [A-Za-z0-9._-]")
    if pc.any(pc.less(table.column("row"), 0)).as_py():
        raise Invalid("a row of the prediction chunk is negative")
    if table.schema.field("row").type != pa.int32():
        table = table.set_column(
            table.schema.get_field_index("row"), "row", pc.cast(table.column("row"), pa.int32())
        )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(table)
    stored = sink.getvalue().to_pybytes()
    payload = {"spool_id": spool_id, "seq": seq, "rows": rows, "first_at": first_at, "last_at": last_at}
    with guard.write(
        store, caller, "prediction.log", workspace=workspace, object=_ref(workspace, name), payload=payload
    ) as w:
        eid = _endpoint_id(w.conn, workspace, name)
        seen = w.conn.execute(
            select(prediction_chunks.c.id).where(
                prediction_chunks.c.endpoint_id == eid,
                prediction_chunks.c.spool_id == spool_id,
                prediction_chunks.c.seq == seq,
            )
        ).first()
        if seen is not None:
            w.changed = False
            return {"stored": False, "rows": rows}
        w.conn.execute(
            prediction_chunks.insert().values(
                endpoint_id=eid,
                spool_id=spool_id,
                seq=seq,
                rows=rows,
                first_at=first_at,
                last_at=last_at,
                data=stored,
                created_at=now_ms(),
            )
        )
    return {"stored": True, "rows": rows}


# -- ground truth ---------------------------------------------------------------------------------


def _row_id(raw: Any, i: int) -> str:
    if not isinstance(raw, str):
        raise Invalid(f"ids[{i}] is not a string", {"index": i})
    m = ROW_ID.match(raw)
    if m is None:
        raise Invalid(
            f"ids[{i}]={raw[:80]!r} is not a row id: REQUEST_ID (1-64 characters of [A-Za-z0-9._-]) "
            "or REQUEST_ID:ROW",
            {"index": i},
        )
    return f"{m.group(1)}:{int(m.group(2) or 0)}"


def _label(raw: Any, i: int) -> str:
    if isinstance(raw, float) and not math.isfinite(raw):
        raise Invalid(f"labels[{i}] is not a finite number", {"index": i})
    if isinstance(raw, str) and len(raw) > MAX_LABEL_CHARS:
        raise Invalid(f"labels[{i}] is longer than {MAX_LABEL_CHARS} characters", {"index": i})
    if raw is not None and not isinstance(raw, (bool, int, float, str)):
        raise Invalid(f"labels[{i}] is not a number, string, bool or null", {"index": i})
    return jsonvalue.dumps(raw)


def log_ground_truth(
    store: Store, caller: Caller, workspace: str, name: str, ids: list[Any], labels: list[Any]
) -> dict[str, Any]:
    """Labels for logged predictions by row id (``prediction.label``); the last label wins."""
    lookups.allow_visible(caller, "prediction.label", workspace, _missing(workspace, name))
    if not isinstance(ids, list) or not isinstance(labels, list):
        raise Invalid("ids and labels must be lists")
    if len(ids) != len(labels):
        raise Invalid(f"ids has {len(ids)} entries but labels has {len(labels)}; they must match")
    if len(ids) > MAX_LABELS:
        raise TooLarge(f"at most {MAX_LABELS:,} labels per call; this one has {len(ids):,}")
    if not ids:
        raise Invalid("no ids given")
    by_row = {_row_id(r, i): _label(lab, i) for i, (r, lab) in enumerate(zip(ids, labels, strict=True))}
    at = now_ms()
    with guard.write(
        store,
        caller,
        "prediction.label",
        workspace=workspace,
        object=_ref(workspace, name),
        payload={"rows": len(by_row), "first": next(iter(by_row))},
    ) as w:
        eid = _endpoint_id(w.conn, workspace, name)
        rows = [{"endpoint_id": eid, "row_id": k, "label_json": v, "at": at} for k, v in by_row.items()]
        for i in range(0, len(rows), 5000):
            upsert(w.conn, ground_truth, rows[i : i + 5000], ["endpoint_id", "row_id"], ["label_json", "at"])
    return {"labeled": len(by_row)}


def label_rows(conn: Connection, eid: int) -> Any:
    """The labels of an endpoint as an Arrow table (row_id, label, label_at)."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    res = conn.execute(
        select(ground_truth.c.row_id, ground_truth.c.label_json, ground_truth.c.at).where(
            ground_truth.c.endpoint_id == eid
        )
    ).all()
    values = [jsonvalue.loads(r[1]) for r in res]
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int, float}:
        col = pa.array(values, pa.float64())
    elif kinds == {bool}:
        col = pa.array(values, pa.bool_())
    else:
        col = pa.array(
            [v if v is None or isinstance(v, str) else jsonvalue.dumps(v) for v in values], pa.string()
        )
    return pa.table(
        {
            "row_id": pa.array([r[0] for r in res], pa.string()),
            "label": col,
            "label_at": pa.array([r[2] for r in res], pa.int64()),
        }
    )


# -- reading --------------------------------------------------------------------------------------


def read_predictions(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    with_labels: bool = True,
) -> Any:
    """The endpoint's logged predictions with ``since_ms <= at < until_ms`` as one pyarrow Table,
    ordered by time, with ``label`` and ``label_at`` joined by row id when ``with_labels``."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

    lookups.allow_visible(caller, "prediction.read", workspace, _missing(workspace, name))
    with store.db.read() as conn:
        eid = _endpoint_id(conn, workspace, name)
        cond = [prediction_chunks.c.endpoint_id == eid]
        if since_ms is not None:
            cond.append(prediction_chunks.c.last_at >= since_ms)
        if until_ms is not None:
            cond.append(prediction_chunks.c.first_at < until_ms)
        chunks = conn.execute(
            select(prediction_chunks.c.data)
            .where(and_(*cond))
            .order_by(prediction_chunks.c.first_at, prediction_chunks.c.id)
        ).all()
        labels = label_rows(conn, eid) if with_labels else None
    tables = [pa.ipc.open_stream(pa.py_buffer(c[0])).read_all() for c in chunks]
    if tables:
        table = pa.concat_tables(
            [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
        )
    else:
        table = pa.table(
            {
                "request_id": pa.array([], pa.string()),
                "row": pa.array([], pa.int32()),
                "at": pa.array([], pa.int64()),
                "latency_us": pa.array([], pa.int64()),
            }
        )
    if since_ms is not None or until_ms is not None:
        mask = pc.and_(
            pc.greater_equal(table["at"], since_ms if since_ms is not None else -(1 << 62)),
            pc.less(table["at"], until_ms if until_ms is not None else 1 << 62),
        )
        table = table.filter(mask)
    if table.num_rows:
        table = table.take(pc.sort_indices(table, [("at", "ascending")]))
    if labels is not None:
        row_ids = pc.binary_join_element_wise(table["request_id"], pc.cast(table["row"], pa.string()), ":")
        idx = pc.index_in(row_ids, value_set=labels["row_id"])
        table = table.append_column("label", pc.take(labels["label"], idx))
        table = table.append_column("label_at", pc.take(labels["label_at"], idx))
    return table


def predictions_page(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    with_labels: bool = True,
    offset: int = 0,
    limit: int = 1000,
) -> dict[str, Any]:
    """One page of :func:`read_predictions` as JSON rows (the Arrow form is the efficient one)."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise Invalid(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    table = read_predictions(store, caller, workspace, name, since_ms, until_ms, with_labels)
    page = table.slice(offset, limit)
    rows = page.to_pylist()
    for r in rows:  # JSON has no NaN: a missing float output or label is null
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
    end = offset + len(rows)
    return {
        "predictions": rows,
        "total": table.num_rows,
        "next_offset": end if end < table.num_rows else None,
    }
