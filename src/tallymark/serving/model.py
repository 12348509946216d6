"""Loading one registered model version for an endpoint, from the registry's own blobs only.

The endpoint asks the store (through the SDK transport, so it works against the embedded home and a
server alike) for the version's files and metadata, picks the model file
(:func:`tallymark.serving.formats.choose`), downloads it through the model version (the read
permission of the version, never a raw blob by hash), hashes exactly the bytes it then hands to
XGBoost and refuses them when the sha256 is not the registry's. Remote references (``s3://``…) are
refused: what the registry did not store, it cannot vouch for.

Data formats (XGBoost UBJ/JSON) are parsed by XGBoost, never executed. A pickle is loaded only for
a version a workspace admin trusted (``trusted_model_versions``); the log line says what is
unpickled, by whose trust, and it must hold an XGBoost Booster (or an sklearn-API XGBoost model,
whose booster is then served), so every version is served by the same code below.

The booster is XGBoost's C library called directly (:mod:`tallymark.serving.booster`: no
``import xgboost``, which costs ~0.25 s of start-up), with ``nthread=1`` for small batches
(XGBoost's thread pool costs ~1.5 ms on a 5-row predict on two cores, DESIGN §6) and a copy with
every core for batches of :data:`LARGE_BATCH` rows or more. Where that library cannot be found, the
Python package's ``Booster`` is used behind the same methods.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tallymark.serving import formats
from tallymark.serving.inputs import Schema

__all__ = ["LARGE_BATCH", "LoadError", "Loaded", "from_bytes", "from_prepared", "load", "prepare"]

log = logging.getLogger("tallymark.serving")

LARGE_BATCH = 512  # rows from which a predict uses every core
MAX_SIGNATURE_BYTES = 1 << 20


class LoadError(Exception):
    """The version cannot be served; the message says why (it becomes the endpoint's failure)."""


@dataclass
class Loaded:
    booster: Any
    schema: Schema
    workspace: str
    name: str
    version: str
    model_file: formats.ModelFile
    outputs: list[dict[str, Any]] = field(default_factory=list)
    objective: str = ""
    _wide: Any = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) >= LARGE_BATCH:
            if self._wide is None:
                self._wide = self.booster.copy(nthread=0)  # 0: every core
            out: np.ndarray = self._wide.predict(x)
            return out
        small: np.ndarray = self.booster.predict(x)
        return small

    @property
    def output_name(self) -> str:
        return str(self.outputs[0]["name"]) if self.outputs else "score"

    def describe(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "name": self.name,
            "version": self.version,
            "file": self.model_file.logical_path,
            "sha256": self.model_file.sha256,
            "format": self.model_file.format,
            "objective": self.objective,
            "inputs": self.schema.describe(),
            "outputs": self.outputs or [{"name": "score", "type": "float"}],
        }


def _signature(meta: dict[str, Any], sig_file: dict[str, Any] | None) -> dict[str, Any] | None:
    sig = meta.get("signature")
    if isinstance(sig, dict):
        return sig
    return sig_file


def from_bytes(
    data: bytes,
    mf: formats.ModelFile,
    signature: dict[str, Any] | None,
    *,
    workspace: str,
    name: str,
    version: str,
    trusted_by: str | None = None,
) -> Loaded:
    """Build the served model from a file's verified bytes (see the module for the rules)."""
    if mf.unpickles or formats.looks_like_pickle(data[:2]):
        if trusted_by is None:
            raise LoadError(formats.refusal(workspace, name, version, mf))
        data = _trusted_pickle(data, mf, trusted_by)  # the booster, saved as UBJ
    booster = _booster(data, mf)
    count = booster.num_features()
    names = booster.feature_names
    try:
        if signature and signature.get("inputs") is not None:
            schema = Schema.from_signature(signature["inputs"])
        else:
            schema = Schema.from_booster(names, booster.feature_types, count)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    if schema.width != count:
        raise LoadError(f"the signature lists {schema.width} inputs but the booster takes {count} features")
    if names and list(names) != schema.names:
        raise LoadError(
            "the signature's input names differ from the booster's feature names "
            f"({', '.join(names[:5])}…): the model would score columns in the wrong order"
        )
    try:
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except (ValueError, KeyError, TypeError):
        objective = ""
    outputs = list(signature.get("outputs") or []) if signature else []
    return Loaded(booster, schema, workspace, name, version, mf, outputs, objective)


def _booster(data: bytes, mf: formats.ModelFile) -> Any:
    """XGBoost's C library directly (:mod:`tallymark.serving.booster`), else the Python package."""
    from tallymark.serving import booster as native

    if native.available():
        try:
            return native.NativeBooster(data, nthread=1)
        except native.NativeError as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "unreadable"
            raise LoadError(
                f"{mf.logical_path} is not an XGBoost {mf.format.upper()} model: {first}"
            ) from None
    return _PackageBooster(data, mf)


class _PackageBooster:
    """``xgboost.Booster`` behind :class:`~tallymark.serving.booster.NativeBooster`'s methods."""

    def __init__(self, data: bytes, mf: formats.ModelFile, nthread: int = 1) -> None:
        import xgboost as xgb

        self._data, self._mf = data, mf
        self.b = xgb.Booster()
        try:
            self.b.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "unreadable"
            raise LoadError(
                f"{mf.logical_path} is not an XGBoost {mf.format.upper()} model: {first}"
            ) from None
        self.b.set_param({"nthread": nthread})
        self.feature_names = self.b.feature_names
        self.feature_types = self.b.feature_types

    def copy(self, nthread: int) -> _PackageBooster:
        return _PackageBooster(self._data, self._mf, nthread)

    def num_features(self) -> int:
        return int(self.b.num_features())

    def save_config(self) -> str:
        return str(self.b.save_config())

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.b.inplace_predict(x, validate_features=False)
        return out


def _trusted_pickle(data: bytes, mf: formats.ModelFile, trusted_by: str) -> bytes:
    """Unpickle a trusted file and return its booster as UBJ bytes (served like any other)."""
    import pickle

    from tallymark.serving import imports

    log.warning(
        "unpickling %s (sha256 %s, %d bytes): this runs code from the file; allowed because %s "
        "trusted this version",
        mf.logical_path,
        mf.sha256,
        len(data),
        trusted_by,
    )
    imports.unblock()  # an sklearn-API model needs sklearn to unpickle
    import xgboost as xgb

    try:
        obj = pickle.loads(data)  # noqa: S301 - only for a version an admin trusted (see module)
    except Exception as exc:
        raise LoadError(
            f"the trusted pickle {mf.logical_path} could not be loaded: {type(exc).__name__}: {exc}"
        ) from None
    booster = obj.get_booster() if hasattr(obj, "get_booster") else obj
    if not isinstance(booster, xgb.Booster):
        raise LoadError(
            f"the trusted pickle {mf.logical_path} holds a {type(obj).__name__}; endpoints serve "
            "XGBoost models only (a Booster or an sklearn-API XGBoost model)"
        )
    return bytes(booster.save_raw("ubj"))


def prepare(
    transport: Any,
    workspace: str,
    name: str,
    version: str,
    cache: Path,
    trusted_by: str | None = None,
) -> dict[str, Any]:
    """Fetch one version's model file (sha256-checked) into ``cache`` and resolve its signature:
    everything :func:`from_prepared` needs, as JSON-able data (no XGBoost here). ``Model.deploy``
    runs this in the deploying process, whose store is already open, so the endpoint process can
    answer without opening one first; the endpoint verifies the file's sha256 again on load."""
    from tallymark.sdk.transport import TallymarkError

    try:
        details = transport.call("model_version", workspace=workspace, name=name, version=version)
    except TallymarkError as exc:
        raise LoadError(f"model {name!r} version {version}: {exc.message}") from None
    meta = details.get("metadata") or {}
    files = details.get("files") or []
    try:
        mf = formats.choose(meta, files)
    except formats.ModelFormatError as exc:
        raise LoadError(f"model {name!r} version {version}: {exc}") from None
    if mf.unpickles and trusted_by is None:
        raise LoadError(formats.refusal(workspace, name, version, mf))
    owner = ("model", workspace, name, version)
    path = _fetch(transport, mf.sha256, owner, cache, mf.logical_path)
    sig: dict[str, Any] | None = None
    if not isinstance(meta.get("signature"), dict):
        sf = formats.signature_file(files)
        if sf is not None and (sf.get("size") or 0) <= MAX_SIGNATURE_BYTES:
            raw = _fetch(transport, sf["sha256"], owner, cache, sf["logicalPath"]).read_bytes()
            try:
                sig = json.loads(raw)
            except ValueError:
                raise LoadError(f"{sf['logicalPath']} is not JSON") from None
            if not isinstance(sig, dict):
                raise LoadError(f"{sf['logicalPath']} must hold an object with inputs and outputs")
    return {
        "workspace": workspace,
        "name": name,
        "version": version,
        "file": {"logicalPath": mf.logical_path, "sha256": mf.sha256, "size": mf.size, "format": mf.format},
        "path": str(path),
        "signature": _signature(meta, sig),
        "trustedBy": trusted_by,
    }


def from_prepared(prep: dict[str, Any]) -> Loaded:
    """Load what :func:`prepare` fetched, checking the file's sha256 against the registry's."""
    f = prep["file"]
    mf = formats.ModelFile(f["logicalPath"], f["sha256"], f.get("size"), f["format"])
    try:
        data = Path(prep["path"]).read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read the fetched model file {prep['path']}: {exc.strerror}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != mf.sha256:
        raise LoadError(
            f"{mf.logical_path}: the file hashes to {got}, not the registry's {mf.sha256}; refused"
        )
    return from_bytes(
        data,
        mf,
        prep.get("signature"),
        workspace=prep["workspace"],
        name=prep["name"],
        version=prep["version"],
        trusted_by=prep.get("trustedBy"),
    )


def load(
    transport: Any,
    workspace: str,
    name: str,
    version: str,
    cache: Path,
    trusted_by: str | None = None,
) -> Loaded:
    """Fetch, verify and load one version (raises :class:`LoadError` saying why it cannot)."""
    return from_prepared(prepare(transport, workspace, name, version, cache, trusted_by))


def _fetch(transport: Any, sha256: str, owner: tuple[str, str, str, str], cache: Path, what: str) -> Path:
    """One file of the version in ``cache`` (named by its sha256), downloaded through the model
    version unless a copy is there; its bytes are checked against the sha256 either way."""
    from tallymark.sdk.transport import TallymarkError, Unavailable

    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / sha256
    if not dest.exists():
        part = cache / f"{sha256}.part"
        try:
            transport.call("download_blob", sha256=sha256, dest=part, owner=owner)
        except (TallymarkError, Unavailable) as exc:
            part.unlink(missing_ok=True)
            raise LoadError(f"cannot download {what}: {getattr(exc, 'message', exc)}") from None
        part.replace(dest)
    h = hashlib.sha256()
    with dest.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    got = h.hexdigest()
    if got != sha256:
        dest.unlink(missing_ok=True)
        raise LoadError(f"{what}: the downloaded bytes hash to {got}, not the registry's {sha256}; refused")
    return dest
