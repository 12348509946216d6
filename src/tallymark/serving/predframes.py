"""The payloads of the prediction spool's frames, and turning a segment of them into one Arrow table.

Why not Arrow in every frame: the writer thread shares the endpoint's GIL with the requests, and
building 30-odd Arrow arrays for every 20 ms batch cost more of it (~25 µs a record) than the log
may add to a response. So a numeric batch (the usual case: a float matrix of features) is written
as raw little-endian arrays, ~1 µs a record, and the shipper builds the columnar table once per
segment, where each Arrow call covers thousands of rows. A batch that is not purely numeric
(strings, booleans, objects) is written as an Arrow IPC stream of its own.

The first byte of a payload says what it is:

``H`` (the first frame of each segment) JSON ``{"endpoint", "features", "outputs"}``: the names of
    the columns below, so a segment written by an earlier process is read with its own names;
``R`` a raw batch: ``<IIII`` records, rows, features, outputs; the request ids (u16 lengths, then
    the UTF-8 bytes); per record rows (i32), at (i64), latency_us (i64); then the inputs
    (f64, rows × features, row-major) and the outputs (f64, rows × outputs);
``A`` an Arrow IPC stream of one record batch with the final columns.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

__all__ = ["HEAD", "RESERVED", "REQUEST_ID", "column_names", "decode_segment", "encode", "header"]

HEAD, RAW, ARROW = b"H", b"R", b"A"
RESERVED = ("request_id", "row", "at", "latency_us")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_COUNTS = struct.Struct("<IIII")
_SCHEMA_KEY = b"tallymark.predictions"

Item = tuple[str, int, int, Any, Any]


def header(endpoint: str, features: list[str], outputs: list[str] | None) -> bytes:
    return HEAD + json.dumps({"endpoint": endpoint, "features": features, "outputs": outputs}).encode()


def column_names(features: list[str], nout: int, outputs: list[str] | None) -> tuple[list[str], list[str]]:
    """(input column names, output column names): a feature named like a reserved or output column
    is stored as ``input.NAME``."""
    default = ["prediction"] if nout == 1 else [f"prediction_{i}" for i in range(nout)]
    outs = list(outputs) if outputs else default
    if len(outs) != nout:
        raise ValueError(f"{nout} output columns, {len(outs)} names")
    ins = [f if f not in RESERVED and f not in outs else f"input.{f}" for f in features]
    return ins, outs


def encode(items: list[Item], features: list[str], outputs: list[str] | None) -> tuple[bytes, int, Any]:
    """(payload, rows, signature) of a batch; raises ValueError for a record that does not fit."""
    import numpy as np

    nf = len(features)
    ins, outs = [], []
    raw = True
    for rid, _, _, x, y in items:
        if not isinstance(rid, str) or not REQUEST_ID.match(rid):
            raise ValueError(f"request id {str(rid)[:80]!r} is not 1-64 characters of [A-Za-z0-9._-]")
        a = np.asarray(x)
        if a.ndim != 2:
            a = a.reshape(len(a), -1)
        o = np.asarray(y)
        o = o.reshape(len(o), -1)
        if a.shape[1] != nf or len(o) != len(a):
            raise ValueError(f"inputs {a.shape} / outputs {o.shape} do not match {nf} features")
        raw = raw and a.dtype.kind in "fiu" and o.dtype.kind in "fiu"
        ins.append(a)
        outs.append(o)
    nout = outs[0].shape[1]
    if any(o.shape[1] != nout for o in outs):
        raise ValueError("records with different numbers of outputs")
    if not raw:
        return _encode_arrow(items, ins, outs, features, outputs)
    counts = np.fromiter((len(a) for a in ins), dtype=np.int32, count=len(ins))
    rows = int(counts.sum())
    ids = [it[0].encode() for it in items]
    parts = [
        RAW,
        _COUNTS.pack(len(items), rows, nf, nout),
        np.fromiter((len(b) for b in ids), dtype="<u2", count=len(ids)).tobytes(),
        b"".join(ids),
        counts.astype("<i4").tobytes(),
        np.fromiter((it[1] for it in items), dtype="<i8", count=len(items)).tobytes(),
        np.fromiter((it[2] for it in items), dtype="<i8", count=len(items)).tobytes(),
        _f8(ins),
        _f8(outs),
    ]
    return b"".join(parts), rows, ("raw", nf, nout)


def _f8(blocks: list[Any]) -> bytes:
    import numpy as np

    whole = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return bytes(np.ascontiguousarray(whole, dtype="<f8").data)


def _encode_arrow(
    items: list[Item], ins: list[Any], outs: list[Any], features: list[str], outputs: list[str] | None
) -> tuple[bytes, int, Any]:
    import numpy as np
    import pyarrow as pa

    counts = np.fromiter((len(a) for a in ins), dtype=np.int64, count=len(ins))
    inputs = np.concatenate(ins)
    out = np.concatenate(outs)
    in_names, out_names = column_names(features, out.shape[1], outputs)
    cols = _reserved(
        [it[0] for it in items],
        counts,
        np.fromiter((it[1] for it in items), dtype=np.int64, count=len(items)),
        np.fromiter((it[2] for it in items), dtype=np.int64, count=len(items)),
    )
    for j, name in enumerate(in_names):
        cols[name] = _column(inputs[:, j])
    for j, name in enumerate(out_names):
        cols[name] = _column(out[:, j])
    batch = pa.RecordBatch.from_pydict(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return ARROW + sink.getvalue().to_pybytes(), int(counts.sum()), batch.schema


def _reserved(ids: Any, counts: Any, at: Any, latency: Any) -> dict[str, Any]:
    """The four reserved columns; ``ids`` one per record (a list or an Arrow string array)."""
    import numpy as np
    import pyarrow as pa

    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    per_record = ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
    return {
        "request_id": per_record.take(pa.array(np.repeat(np.arange(len(counts), dtype=np.int64), counts))),
        "row": pa.array((np.arange(total, dtype=np.int64) - starts).astype(np.int32)),
        "at": pa.array(np.repeat(at.astype(np.int64), counts)),
        "latency_us": pa.array(np.repeat(latency.astype(np.int64), counts)),
    }


def _column(values: Any) -> Any:
    """An Arrow column of one input or output: numbers as float64, booleans, else strings."""
    import numpy as np
    import pyarrow as pa

    kind = values.dtype.kind
    if kind in "fiu":
        return pa.array(values.astype(np.float64, copy=False))
    if kind == "b":
        return pa.array(values)
    if kind == "O":
        try:
            return pa.array(values.astype(np.float64))
        except (TypeError, ValueError):
            pass
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def decode_segment(frames: list[bytes]) -> Any:
    """One Arrow table of a segment's frames (``H`` first); None when it holds no rows."""
    import numpy as np
    import pyarrow as pa

    if not frames or frames[0][:1] != HEAD:
        raise ValueError("a spool segment without its header frame")
    head = json.loads(frames[0][1:])
    features, outputs = head["features"], head.get("outputs")
    raws: list[tuple[Any, Any, Any, Any, Any, Any]] = []
    tables = []
    for f in frames[1:]:
        kind = f[:1]
        if kind == RAW:
            raws.append(_decode_raw(f))
        elif kind == ARROW:
            tables.append(pa.ipc.open_stream(pa.py_buffer(f[1:])).read_all())
        else:
            raise ValueError(f"a spool frame of unknown kind {kind!r}")
    if raws:
        ids = pa.concat_arrays([r[0] for r in raws])
        counts = np.concatenate([r[1] for r in raws])
        at = np.concatenate([r[2] for r in raws])
        cols = _reserved(ids, counts, at, np.concatenate([r[3] for r in raws]))
        x = np.ascontiguousarray(np.concatenate([r[4] for r in raws]).T)
        y = np.ascontiguousarray(np.concatenate([r[5] for r in raws]).T)
        in_names, out_names = column_names(features, y.shape[0], outputs)
        for j, name in enumerate(in_names):
            cols[name] = pa.array(x[j])
        for j, name in enumerate(out_names):
            cols[name] = pa.array(y[j])
        tables.insert(0, pa.table(cols))
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    meta = {"endpoint": head.get("endpoint"), "features": features}
    return table.replace_schema_metadata({_SCHEMA_KEY: json.dumps(meta)})


def _decode_raw(f: bytes) -> tuple[Any, Any, Any, Any, Any, Any]:
    import numpy as np
    import pyarrow as pa

    nrec, rows, nf, nout = _COUNTS.unpack_from(f, 1)
    pos = 1 + _COUNTS.size
    lens = np.frombuffer(f, dtype="<u2", count=nrec, offset=pos)
    pos += 2 * nrec
    size = int(lens.sum())
    offsets = np.zeros(nrec + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    ids = pa.StringArray.from_buffers(nrec, pa.py_buffer(offsets), pa.py_buffer(f[pos : pos + size]))
    ids.validate(full=True)  # the bytes were checksummed, not checked as UTF-8
    pos += size
    counts = np.frombuffer(f, dtype="<i4", count=nrec, offset=pos)
    pos += 4 * nrec
    at = np.frombuffer(f, dtype="<i8", count=nrec, offset=pos)
    pos += 8 * nrec
    lat = np.frombuffer(f, dtype="<i8", count=nrec, offset=pos)
    pos += 8 * nrec
    x = np.frombuffer(f, dtype="<f8", count=rows * nf, offset=pos).reshape(rows, nf)
    pos += 8 * rows * nf
    y = np.frombuffer(f, dtype="<f8", count=rows * nout, offset=pos).reshape(rows, nout)
    if pos + 8 * rows * nout != len(f) or int(counts.sum()) != rows:
        raise ValueError("a raw spool frame whose sizes do not add up")
    return ids, counts, at, lat, x, y
