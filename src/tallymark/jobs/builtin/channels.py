"""Reading a built-in algorithm's channel: CSV, libsvm or parquet, label first (docs/sagemaker.md).

A channel is a folder of files (``SM_CHANNEL_TRAIN``). Its content type comes from the channel's
configuration (``TrainingInput(..., content_type="text/csv")``, passed as ``SM_INPUT_DATA_CONFIG``
or ``input/config/inputdataconfig.json`` like SageMaker does), else from the files' extension:

- CSV (``text/csv``, ``.csv``): no header, the label in the first column, the features after it
  (with ``csv_weights=1`` the second column is the instance weight); features are named ``f0..fN-1``.
- libsvm (``text/libsvm``, ``.libsvm``/``.svm``): ``label idx:value …``; column ``idx`` is feature
  ``f<idx>``, as XGBoost's own reader counts them.
- parquet (``application/x-parquet``, ``.parquet``/``.pq``): the first column is the label, the
  others are the features, keeping their names and types.

Files are read in name order and concatenated; hidden files (``.…``) and ``_SUCCESS`` markers are
skipped. Anything unreadable raises :class:`ChannelError` with the file and the reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChannelError", "Table", "channel_files", "content_types", "read_channel", "signature_type"]

_TYPES = {
    "text/csv": "csv",
    "csv": "csv",
    "text/libsvm": "libsvm",
    "text/x-libsvm": "libsvm",
    "libsvm": "libsvm",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
    "parquet": "parquet",
}
_EXTENSIONS = {".csv": "csv", ".libsvm": "libsvm", ".svm": "libsvm", ".parquet": "parquet", ".pq": "parquet"}


class ChannelError(ValueError):
    """A channel the trainer cannot read; the message names the channel and the file."""


@dataclass
class Table:
    """One channel read into memory: ``X`` (rows × features), ``y``, optional ``weight``."""

    X: Any  # numpy array, scipy CSR matrix (libsvm) or pandas DataFrame (parquet)
    y: Any
    weight: Any
    names: list[str]
    types: list[str]  # signature types: double, float, long, integer, boolean
    fmt: str

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


def content_types(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ``ContentType`` of each channel as configured (SageMaker's input data config)."""
    env = os.environ if environ is None else environ
    raw = env.get("SM_INPUT_DATA_CONFIG")
    if raw is None:
        config_dir = env.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
        path = Path(config_dir) / "inputdataconfig.json"
        raw = path.read_text() if path.is_file() else "{}"
    try:
        config = json.loads(raw)
    except ValueError:
        return {}
    out: dict[str, str] = {}
    if isinstance(config, dict):
        for name, entry in config.items():
            if isinstance(entry, dict) and entry.get("ContentType"):
                out[str(name)] = str(entry["ContentType"])
    return out


def channel_files(name: str, folder: str | Path) -> list[Path]:
    """The data files of a channel folder, in name order (recursively, as SageMaker copies prefixes)."""
    root = Path(folder)
    if not root.is_dir():
        raise ChannelError(f"channel {name!r}: {root} is not a folder")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "_SUCCESS" and not p.is_symlink()
    )
    files = [p for p in files if p.stat().st_size > 0]
    if not files:
        raise ChannelError(f"channel {name!r} is empty: no data files under {root}")
    return files


def resolve_format(name: str, files: list[Path], content_type: str | None) -> str:
    """``csv`` | ``libsvm`` | ``parquet`` for a channel, from its content type or its files' names."""
    if content_type:
        base = content_type.split(";")[0].strip().lower()
        if base not in _TYPES:
            raise ChannelError(
                f"channel {name!r}: content type {content_type!r} is not one the built-in XGBoost trainer "
                "reads (text/csv, text/libsvm, application/x-parquet)"
            )
        return _TYPES[base]
    found = {_EXTENSIONS.get(p.suffix.lower()) for p in files}
    if None in found:
        odd = next(p for p in files if p.suffix.lower() not in _EXTENSIONS)
        raise ChannelError(
            f"channel {name!r}: cannot tell the content type of {odd.name!r} from its extension; "
            "name files .csv, .libsvm or .parquet, or give the channel a content_type "
            "(text/csv, text/libsvm, application/x-parquet)"
        )
    if len(found) > 1:
        raise ChannelError(f"channel {name!r} mixes formats ({', '.join(sorted(str(f) for f in found))})")
    return str(found.pop())


def signature_type(dtype: Any) -> str:
    """The feature-schema type of a numpy/pandas dtype (docs: double, float, long, integer, boolean)."""
    import numpy as np

    try:
        dt = np.dtype(dtype)
    except TypeError:  # pandas extension dtypes (Int64, boolean, string) carry a numpy one, or none
        dt = np.dtype(getattr(dtype, "numpy_dtype", object))
    if dt == np.bool_:
        return "boolean"
    if dt.kind in "iu":
        return "long" if dt.itemsize >= 8 else "integer"
    if dt.kind == "f":
        return "double" if dt.itemsize >= 8 else "float"
    return "string"


def _read_csv(name: str, files: list[Path], weights: bool) -> Table:
    import numpy as np
    import pandas as pd

    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path, header=None, dtype=np.float64, skip_blank_lines=True)
        except pd.errors.ParserError as exc:  # a ValueError too: ragged rows, bad quoting
            raise ChannelError(f"channel {name!r}: cannot read {path.name} as CSV: {exc}") from None
        except ValueError as exc:
            raise ChannelError(
                f"channel {name!r}: {path.name} is not numeric CSV without a header ({exc}); the built-in "
                "trainer expects the label in the first column and no header row"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ChannelError(f"channel {name!r}: cannot read {path.name} as CSV: {exc}") from None
        frames.append(frame)
    widths = {f.shape[1] for f in frames}
    if len(widths) > 1:
        raise ChannelError(f"channel {name!r}: files have different numbers of columns ({sorted(widths)})")
    data = pd.concat(frames, ignore_index=True).to_numpy(dtype=np.float64)
    first = 2 if weights else 1
    if data.shape[1] <= first:
        raise ChannelError(
            f"channel {name!r}: CSV rows need a label{' and a weight' if weights else ''} and features"
        )
    X = data[:, first:]
    names = [f"f{i}" for i in range(X.shape[1])]
    return Table(X, data[:, 0], data[:, 1] if weights else None, names, ["double"] * len(names), "csv")


def _read_libsvm(name: str, files: list[Path]) -> Table:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.datasets import load_svmlight_file

    parts = []
    for path in files:
        try:
            X, y = load_svmlight_file(str(path), zero_based=True, dtype=np.float64)
        except Exception as exc:
            raise ChannelError(f"channel {name!r}: cannot read {path.name} as libsvm: {exc}") from None
        parts.append((X, y))
    width = max(X.shape[1] for X, _ in parts)
    X = sp.vstack([sp.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], width)) for x, _ in parts])
    y = np.concatenate([y for _, y in parts])
    names = [f"f{i}" for i in range(width)]
    return Table(X.tocsr(), y, None, names, ["double"] * width, "libsvm")


def _read_parquet(name: str, files: list[Path]) -> Table:
    import pandas as pd

    frames = []
    for path in files:
        try:
            frames.append(pd.read_parquet(path))
        except Exception as exc:
            raise ChannelError(f"channel {name!r}: cannot read {path.name} as parquet: {exc}") from None
    columns = {tuple(map(str, f.columns)) for f in frames}
    if len(columns) > 1:
        raise ChannelError(f"channel {name!r}: parquet files have different columns")
    frame = pd.concat(frames, ignore_index=True)
    if frame.shape[1] < 2:
        raise ChannelError(f"channel {name!r}: parquet needs a label column and at least one feature")
    frame.columns = [str(c) for c in frame.columns]
    label = frame.iloc[:, 0]
    X = frame.iloc[:, 1:]
    types = [signature_type(dt) for dt in X.dtypes]
    for column, kind in zip(X.columns, types, strict=True):
        if kind == "string":
            raise ChannelError(
                f"channel {name!r}: feature column {column!r} is not numeric or boolean ({X[column].dtype}); "
                "encode it before training"
            )
    if signature_type(label.dtype) == "string":
        raise ChannelError(f"channel {name!r}: the label column {frame.columns[0]!r} is not numeric")
    return Table(X, label.to_numpy(dtype="float64"), None, list(X.columns), types, "parquet")


def read_channel(name: str, folder: str | Path, content_type: str | None, csv_weights: bool = False) -> Table:
    """Read a whole channel into memory (see the module docstring for the formats)."""
    files = channel_files(name, folder)
    fmt = resolve_format(name, files, content_type)
    if fmt == "csv":
        table = _read_csv(name, files, csv_weights)
    elif fmt == "libsvm":
        table = _read_libsvm(name, files)
    else:
        table = _read_parquet(name, files)
    if table.rows == 0:
        raise ChannelError(f"channel {name!r} is empty: its files hold no rows")
    return table
