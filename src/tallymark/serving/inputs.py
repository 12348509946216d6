"""Prediction requests in every dialect → one checked matrix (rows × the model's features).

Every way a request can be wrong raises :class:`BadInput` with the HTTP status, a message that
names the column (and row) at fault, and a detail dict; nothing here raises anything else on any
input. Statuses: 400 the body cannot be read (malformed JSON or CSV, not the dialect's shape),
415 a content type the route does not take, 422 a readable request that does not fit the model's
feature schema (unknown, missing or duplicated columns, wrong count, a string or boolean in a
numeric column, a non-integer in an integer column, a missing value where the schema does not
allow one, an infinity).

Missing values (JSON ``null``, ``NaN``, an empty CSV field) reach XGBoost as NaN — its "missing"
marker, which sends the row down each tree's learned default branch — only for a column whose
schema entry says ``"required": false`` (MLflow's ColSpec field). Everywhere else they are refused:
a model whose training data had no gaps has never learned a useful default branch, so a NaN there
is far more often an upstream bug (a failed join, a renamed column) than a real missing value, and
silently scoring it hides that bug.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

__all__ = ["BadInput", "Column", "Schema", "mlflow_request", "predict_request", "v2_request"]

NUMERIC = ("double", "float", "long", "integer")
TYPES = (*NUMERIC, "boolean")
V2_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
}
_V2_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_V2_FLOATS = {"FP16", "FP32", "FP64"}
_SHOWN = 60  # characters of a bad value quoted back


class BadInput(Exception):
    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail or {}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # double | float | long | integer | boolean
    required: bool = True


class Schema:
    """The model's inputs, in the order the booster takes them."""

    def __init__(self, columns: list[Column]) -> None:
        if not columns:
            raise ValueError("a model with no input columns cannot be served")
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError("the model's input columns repeat a name")
        self.columns = tuple(columns)
        self.names = names
        self.width = len(columns)
        self.index = {n: i for i, n in enumerate(names)}
        self.ints = np.array(
            [i for i, c in enumerate(columns) if c.type in ("long", "integer")], dtype=np.intp
        )
        self.bools = [i for i, c in enumerate(columns) if c.type == "boolean"]
        self.optional = np.array([not c.required for c in columns], dtype=bool)

    @classmethod
    def from_signature(cls, inputs: Any) -> Schema:
        if not isinstance(inputs, list):
            raise ValueError('signature "inputs" must be a list of {"name", "type"}')
        cols = []
        for i, c in enumerate(inputs):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
                raise ValueError(f"signature input {i} has no name")
            t = c.get("type", "double")
            if t == "string":
                raise ValueError(
                    f"signature input {c['name']!r} is a string column: endpoints serve numeric XGBoost "
                    "inputs only (encode categories as numbers before training)"
                )
            if t not in TYPES:
                raise ValueError(f"signature input {c['name']!r} has unknown type {t!r}")
            cols.append(Column(c["name"], t, c.get("required", True) is not False))
        return cls(cols)

    @classmethod
    def from_booster(cls, names: list[str] | None, types: list[str] | None, count: int) -> Schema:
        """XGBoost's feature names/types (``float``, ``q``, ``int``, ``i``; ``c`` is refused)."""
        names = names or [f"f{i}" for i in range(count)]
        kinds = {"float": "float", "q": "double", "int": "long", "i": "boolean"}
        cols = []
        for i, n in enumerate(names):
            t = (types or [])[i] if types and i < len(types) else "float"
            if t not in kinds:
                raise ValueError(
                    f"feature {n!r} has XGBoost type {t!r}: endpoints serve numeric features only"
                )
            cols.append(Column(n, kinds[t]))
        return cls(cols)

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "type": c.type, "required": c.required} for c in self.columns]


def _show(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, (str, bool)) or v is None else repr(v)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {str: "a string", bool: "a boolean", list: "a list", dict: "an object"}.get(
        type(v), type(v).__name__
    )


def _bad_cell(schema: Schema, j: int, row: int, v: Any, why: str) -> BadInput:
    c = schema.columns[j]
    return BadInput(
        422,
        f"column {c.name!r} ({c.type}), row {row}: {why}",
        {"column": c.name, "row": row, "type": c.type, "value": _show(v)},
    )


def _cell(schema: Schema, j: int, row: int, v: Any) -> float:
    c = schema.columns[j]
    t = type(v)
    if v is None:
        return float("nan")  # judged with the other missing values below
    if c.type == "boolean":
        if t is bool or ((t is int or t is float) and v in (0, 1)):  # 0/1 too: a numeric matrix sends 0.0/1.0
            return float(v)
        raise _bad_cell(schema, j, row, v, f"expected true/false, got {_kind(v)} {_show(v)}")
    if t is bool:
        raise _bad_cell(schema, j, row, v, f"expected a number, got a boolean {_show(v)}")
    if t is float or t is int:
        try:
            return float(v)
        except OverflowError:
            raise _bad_cell(schema, j, row, v, "number too large") from None
    raise _bad_cell(schema, j, row, v, f"expected a number, got {_kind(v)} {_show(v)}")


def matrix(rows: list[Any], schema: Schema) -> np.ndarray:
    """Rows (lists in the schema's column order) → a float64 matrix, every cell checked."""
    if not isinstance(rows, list):
        raise BadInput(400, f"expected a list of rows, got {_kind(rows)}")
    if not rows:
        raise BadInput(422, "the request has no rows to predict")
    k = schema.width
    for i, r in enumerate(rows):
        if type(r) is not list:
            raise BadInput(422, f"row {i}: expected a list of {k} values, got {_kind(r)}", {"row": i})
        if len(r) != k:
            raise BadInput(
                422,
                f"row {i} has {len(r)} values; the model takes {k} ({_names(schema)})",
                {"row": i, "expected": k, "got": len(r)},
            )
    kinds = set(map(type, chain.from_iterable(rows)))
    arr: np.ndarray | None = None
    if kinds <= {float, int} and not schema.bools:
        try:
            arr = np.array(rows, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            arr = None
    if arr is None:  # the careful path: finds the first bad cell and names it
        arr = np.empty((len(rows), k), dtype=np.float64)
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                arr[i, j] = _cell(schema, j, i, v)
    _check_values(arr, rows, schema)
    return arr


def _check_values(arr: np.ndarray, rows: list[Any], schema: Schema) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        bad = ~finite & ~(np.isnan(arr) & schema.optional)
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            v = rows[i][j]
            if np.isnan(arr[i, j]):
                raise _bad_cell(
                    schema,
                    j,
                    i,
                    v,
                    "missing value (null/NaN) in a column the schema requires; it accepts them only "
                    'for inputs marked "required": false',
                )
            raise _bad_cell(schema, j, i, v, f"{_show(v)} is not a finite number")
    if schema.ints.size:
        sub = arr[:, schema.ints]
        frac = np.isfinite(sub) & (sub != np.floor(sub))
        if frac.any():
            i, jj = (int(x) for x in np.argwhere(frac)[0])
            j = int(schema.ints[jj])
            raise _bad_cell(schema, j, i, rows[i][j], f"expected a whole number, got {_show(rows[i][j])}")


def _names(schema: Schema, limit: int = 8) -> str:
    shown = ", ".join(schema.names[:limit])
    return shown + (f", … ({schema.width} columns)" if schema.width > limit else "")


def _check_names(names: Any, schema: Schema) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInput(400, "column names must be a list of strings")
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        raise BadInput(422, f"column {dup[0]!r} is given twice", {"column": dup[0]})
    unknown = [n for n in names if n not in schema.index]
    missing = [n for n in schema.names if n not in seen]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unknown column(s) " + ", ".join(repr(n) for n in unknown[:10]))
        if missing:
            parts.append("missing column(s) " + ", ".join(repr(n) for n in missing[:10]))
        raise BadInput(
            422,
            f"{'; '.join(parts)}; the model takes {_names(schema)}",
            {"unknown": unknown[:50], "missing": missing[:50], "expected": schema.names},
        )
    return names


def by_name(names: Any, data: Any, schema: Schema) -> np.ndarray:
    """``{"columns": names, "data": rows}``: columns in any order, reordered to the schema's."""
    names = _check_names(names, schema)
    if not isinstance(data, list):
        raise BadInput(400, f'"data" must be a list of rows, got {_kind(data)}')
    if names == schema.names:
        return matrix(data, schema)
    for i, r in enumerate(data):
        if type(r) is not list or len(r) != len(names):
            raise BadInput(422, f"row {i} does not have one value per column ({len(names)})", {"row": i})
    perm = [names.index(c) for c in schema.names]
    return matrix([[r[p] for p in perm] for r in data], schema)


def records(recs: Any, schema: Schema) -> np.ndarray:
    """A list of ``{column: value}`` objects, one per row."""
    if not isinstance(recs, list):
        raise BadInput(400, f"expected a list of records, got {_kind(recs)}")
    names = schema.names
    rows = []
    for i, rec in enumerate(recs):
        if type(rec) is not dict:
            raise BadInput(
                422, f"record {i}: expected an object of column: value, got {_kind(rec)}", {"row": i}
            )
        try:
            row = [rec[n] for n in names]
        except KeyError as exc:
            raise BadInput(
                422,
                f"record {i}: missing column {exc.args[0]!r}; the model takes {_names(schema)}",
                {"row": i, "column": exc.args[0]},
            ) from None
        if len(rec) != len(names):
            extra = next(n for n in rec if n not in schema.index)
            raise BadInput(422, f"record {i}: unknown column {extra!r}", {"row": i, "column": extra})
        rows.append(row)
    return matrix(rows, schema)


def columnar(cols: Any, schema: Schema) -> np.ndarray:
    """``{column: [values…]}`` (MLflow ``inputs``/``instances`` as a dict of columns)."""
    _check_names(list(cols), schema)
    lists = [cols[n] for n in schema.names]
    for n, v in zip(schema.names, lists, strict=True):
        if not isinstance(v, list):
            raise BadInput(422, f"column {n!r}: expected a list of values, got {_kind(v)}", {"column": n})
    lengths = {len(v) for v in lists}
    if len(lengths) != 1:
        raise BadInput(
            422, "the columns have different lengths", {"lengths": {n: len(v) for n, v in cols.items()}}
        )
    return matrix([list(r) for r in zip(*lists, strict=True)], schema)


def _instances(value: Any, schema: Schema, key: str) -> np.ndarray:
    if isinstance(value, dict):
        return columnar(value, schema)
    if not isinstance(value, list):
        raise BadInput(400, f'"{key}" must be a list of rows or an object of columns, got {_kind(value)}')
    if value and all(type(r) is dict for r in value):
        return records(value, schema)
    if value and schema.width == 1 and all(type(r) is not list for r in value):
        value = [[v] for v in value]  # one feature: a flat list is one value per row
    return matrix(value, schema)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadInput(400, "the request body is empty")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise BadInput(400, "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadInput(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", {"pos": exc.pos}
        ) from None
    except RecursionError:
        raise BadInput(400, "malformed JSON: nested too deeply") from None


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def csv_rows(body: bytes, schema: Schema) -> np.ndarray:
    """``text/csv`` with a header row of column names (as MLflow reads it with pandas)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(400, "the CSV body is not UTF-8 text") from None
    try:
        table = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as exc:
        raise BadInput(400, f"malformed CSV: {exc}") from None
    if len(table) < 2:
        raise BadInput(400, "the CSV body needs a header row of column names and at least one row")
    header = [h.strip() for h in table[0]]
    names = _check_names(header, schema)
    cols = [schema.columns[schema.index[n]] for n in names]
    rows: list[list[Any]] = []
    for i, r in enumerate(table[1:]):
        if len(r) != len(names):
            raise BadInput(422, f"CSV row {i} has {len(r)} fields; the header has {len(names)}", {"row": i})
        out: list[Any] = []
        for c, field in zip(cols, r, strict=True):
            s = field.strip()
            if s == "":
                out.append(None)
            elif c.type == "boolean":
                low = s.lower()
                if low not in ("true", "false", "1", "0"):
                    j = schema.index[c.name]
                    raise _bad_cell(schema, j, i, s, f"expected true/false, got {_show(s)}")
                out.append(low in ("true", "1"))
            else:
                try:
                    out.append(int(s) if s.lstrip("+-").isdigit() else float(s))
                except ValueError:
                    j = schema.index[c.name]
                    raise _bad_cell(schema, j, i, s, f"{_show(s)} is not a number") from None
        rows.append(out)
    return by_name(names, rows, schema)


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def mlflow_request(content_type: str, body: bytes, schema: Schema) -> np.ndarray:
    """MLflow's scoring protocol (``POST /invocations``)."""
    media = _media(content_type)
    if media in ("text/csv", "application/csv"):
        return csv_rows(body, schema)
    if media != "application/json":
        raise BadInput(
            415,
            f"Content-Type {content_type[:80]!r} is not taken here: send application/json "
            f"({', '.join(MLFLOW_KEYS)}) or text/csv",
        )
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise BadInput(400, f"expected a JSON object with one of {', '.join(MLFLOW_KEYS)}")
    keys = [k for k in MLFLOW_KEYS if k in doc]
    other = [k for k in doc if k not in MLFLOW_KEYS and k != "params"]
    if len(keys) != 1 or other:
        raise BadInput(
            400,
            f"expected exactly one of {', '.join(MLFLOW_KEYS)} (and optionally params); got "
            + (", ".join(repr(k) for k in doc) or "an empty object"),
        )
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise BadInput(400, '"dataframe_split" must be an object with "columns" and "data"')
        if "columns" in value:
            return by_name(value["columns"], value["data"], schema)
        return matrix(value["data"], schema)
    if key == "dataframe_records":
        return records(value, schema)
    return _instances(value, schema, key)


def predict_request(content_type: str, body: bytes, schema: Schema) -> np.ndarray:
    """``POST /predict``: ``{"columns": [...], "data": [[...]]}``, ``{"data": [[...]]}`` in the
    schema's order, or a list of records; text/csv as for /invocations."""
    media = _media(content_type)
    if media in ("text/csv", "application/csv"):
        return csv_rows(body, schema)
    if media not in ("application/json", ""):
        raise BadInput(415, f"Content-Type {content_type[:80]!r} is not taken here: send application/json")
    doc = parse_json(body)
    if isinstance(doc, list):
        return records(doc, schema) if doc and type(doc[0]) is dict else matrix(doc, schema)
    if isinstance(doc, dict) and "data" in doc and set(doc) <= {"columns", "data"}:
        if "columns" in doc:
            return by_name(doc["columns"], doc["data"], schema)
        return matrix(doc["data"], schema)
    raise BadInput(400, 'expected {"columns": [...], "data": [[...], ...]} or a list of records')


def _flatten(data: Any, depth: int) -> list[Any]:
    out = data
    for _ in range(depth):
        if not all(type(x) is list for x in out):
            break
        out = list(chain.from_iterable(out))
    return out


def _tensor(t: Any, i: int) -> tuple[str, list[int], str, list[Any]]:
    if not isinstance(t, dict):
        raise BadInput(400, f"inputs[{i}] must be a tensor object with name, shape, datatype, data")
    name, shape, dtype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
    if not isinstance(name, str):
        raise BadInput(400, f"inputs[{i}] has no name")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise BadInput(400, f"tensor {name!r}: shape must be a list of non-negative integers")
    if not isinstance(dtype, str):
        raise BadInput(400, f"tensor {name!r} has no datatype")
    if not isinstance(data, list):
        raise BadInput(400, f"tensor {name!r}: data must be a list")
    flat = _flatten(data, len(shape) - 1)
    size = 1
    for d in shape:
        size *= d
    if len(flat) != size:
        raise BadInput(422, f"tensor {name!r}: shape {shape} needs {size} values, data has {len(flat)}")
    if dtype == "BYTES":
        raise BadInput(422, f"tensor {name!r} is BYTES: the model takes numbers", {"tensor": name})
    if dtype == "BOOL":
        allowed: set[type] = {bool}
    elif dtype in _V2_INTS:
        allowed = {int}
    elif dtype in _V2_FLOATS:
        allowed = {int, float, type(None)}
    else:
        raise BadInput(422, f"tensor {name!r}: unknown datatype {dtype!r}", {"tensor": name})
    if not set(map(type, flat)) <= allowed:
        bad = next(v for v in flat if type(v) not in allowed)
        raise BadInput(
            422,
            f"tensor {name!r} ({dtype}): {_kind(bad)} {_show(bad)} is not a {dtype} value",
            {"tensor": name},
        )
    return name, shape, dtype, flat


def v2_request(body: bytes, schema: Schema) -> tuple[np.ndarray, Any]:
    """Open Inference Protocol ``…/infer``: one [rows, features] tensor, or one tensor per column
    (shape [rows] or [rows, 1]). Returns the matrix and the request's own ``id`` (if any)."""
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadInput(400, 'expected {"inputs": [{"name", "shape", "datatype", "data"}, …]}')
    tensors = [_tensor(t, i) for i, t in enumerate(doc["inputs"])]
    k = schema.width
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and (k > 1 or tensors[0][0] not in schema.index):
        name, shape, _, flat = tensors[0]
        if shape[1] != k:
            raise BadInput(
                422,
                f"tensor {name!r} has {shape[1]} columns; the model takes {k} ({_names(schema)})",
                {"tensor": name, "expected": k, "got": shape[1]},
            )
        return matrix([flat[r * k : (r + 1) * k] for r in range(shape[0])], schema), doc.get("id")
    names = [t[0] for t in tensors]
    _check_names(names, schema)
    cols: dict[str, list[Any]] = {}
    for name, shape, _, flat in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadInput(
                422, f"tensor {name!r}: a column tensor has shape [rows] or [rows, 1], not {shape}"
            )
        cols[name] = flat
    return columnar(cols, schema), doc.get("id")
