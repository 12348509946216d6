"""Which file of a model version an endpoint loads, and whether loading it can run code.

Pure functions over a version's metadata and file list (no I/O, no heavy imports), so the service
can refuse a deploy before any process starts and the endpoint process checks the same again.

The model file is, in order: the file named by ``metadata["model_file"]`` (its logical path); the
only file ending in ``.ubj``, ``.json`` (other than ``signature.json``), ``.pkl``, ``.pickle`` or
``.joblib``, or named ``xgboost-model`` (what SageMaker's XGBoost writes, UBJ here); the only file
(besides ``signature.json``) when ``metadata["format"]`` is given. Its
format is ``metadata["format"]`` when given, else the file's extension. The data formats are
``ubj`` and ``json`` (XGBoost's own model files: parsed, never executed). ``pickle`` (also
``pkl``, ``joblib``, ``cloudpickle``, ``skops``, or a file whose bytes start like a pickle) would
run code from the file while loading: it is served only for a version a workspace admin trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DATA_FORMATS", "ModelFormatError", "ModelFile", "choose", "looks_like_pickle"]

DATA_FORMATS = ("ubj", "json")
PICKLE_FORMATS = ("pickle", "pkl", "joblib", "cloudpickle", "skops", "dill")
_EXT = {".ubj": "ubj", ".json": "json", ".pkl": "pickle", ".pickle": "pickle", ".joblib": "pickle"}
SIGNATURE_FILE = "signature.json"


class ModelFormatError(ValueError):
    """A version that cannot be served (no model file, a remote one, an unknown format)."""


@dataclass(frozen=True)
class ModelFile:
    logical_path: str
    sha256: str
    size: int | None
    format: str  # ubj | json | pickle

    @property
    def unpickles(self) -> bool:
        return self.format == "pickle"


def _format_of(path: str, declared: Any) -> str:
    if isinstance(declared, str) and declared.strip():
        d = declared.strip().lower()
        if d in DATA_FORMATS:
            return d
        if d in PICKLE_FORMATS:
            return "pickle"
        raise ModelFormatError(
            f"model format {declared!r} is not served: endpoints load XGBoost UBJ or JSON model files"
        )
    base = path.rsplit("/", 1)[-1].lower()
    for ext, fmt in _EXT.items():
        if base.endswith(ext):
            return fmt
    if base == "xgboost-model":
        return "ubj"
    raise ModelFormatError(
        f"cannot tell the format of model file {path!r}: name it .ubj or .json, or log the model "
        'with metadata {"format": "ubj"}'
    )


def _candidate(path: str) -> bool:
    base = path.rsplit("/", 1)[-1].lower()
    if base == SIGNATURE_FILE:
        return False
    return base == "xgboost-model" or any(base.endswith(e) for e in _EXT)


def choose(metadata: dict[str, Any] | None, files: list[dict[str, Any]]) -> ModelFile:
    """The model file of a version (see the module) or :class:`ModelFormatError` saying why none."""
    meta = metadata or {}
    fw = meta.get("framework")
    if isinstance(fw, str) and fw.strip() and fw.strip().lower() != "xgboost":
        raise ModelFormatError(f"framework {fw!r} is not served: endpoints serve XGBoost models")
    by_path = {f["logicalPath"]: f for f in files}
    named = meta.get("model_file")
    if isinstance(named, str) and named:
        f = by_path.get(named) or next(
            (g for p, g in by_path.items() if p.endswith("/" + named) or p.rsplit("/", 1)[-1] == named), None
        )
        if f is None:
            raise ModelFormatError(f"metadata names model_file {named!r}, which the version does not have")
    else:
        found = [f for p, f in by_path.items() if _candidate(p)]
        others = [f for p, f in by_path.items() if p.rsplit("/", 1)[-1].lower() != SIGNATURE_FILE]
        if not found and meta.get("format") and len(others) == 1:
            found = others  # one file, its format declared: whatever its name
        if not found:
            listed = ", ".join(sorted(by_path)[:10]) or "no files"
            raise ModelFormatError(f"no model file among the version's files ({listed})")
        if len(found) > 1:
            names = ", ".join(sorted(f["logicalPath"] for f in found))
            raise ModelFormatError(f"several model files ({names}): name one in metadata model_file")
        f = found[0]
    if f.get("remote") or f.get("uri") or not f.get("sha256"):
        raise ModelFormatError(
            f"model file {f['logicalPath']!r} is a remote reference: endpoints load only files "
            "stored in the registry's own blob store"
        )
    return ModelFile(
        f["logicalPath"], f["sha256"], f.get("size"), _format_of(f["logicalPath"], meta.get("format"))
    )


def signature_file(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The version's ``signature.json`` file entry (stored in the blob store), if it has one."""
    for f in files:
        if f["logicalPath"].rsplit("/", 1)[-1] == SIGNATURE_FILE and f.get("sha256") and not f.get("uri"):
            return f
    return None


def looks_like_pickle(head: bytes) -> bool:
    """Whether bytes start like a pickle (protocol 2+ opens with 0x80, then the protocol number)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def refusal(workspace: str, name: str, version: str, mf: ModelFile) -> str:
    """The message for a version whose model file would unpickle and that nobody trusted."""
    return (
        f"model {name!r} version {version} is stored as a pickle ({mf.logical_path}): loading it runs "
        "code from the file, so endpoints refuse it. Log the model as XGBoost UBJ or JSON "
        "(booster.save_model('model.ubj')), or have a workspace admin trust this version: "
        f"tallymark models trust {workspace} {name} {version} --comment 'why'"
    )
