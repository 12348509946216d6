"""Input models (pydantic) shared by the HTTP routes and the SDK's local transport.

Every write is validated here before anything touches a store, so bad input gets a 4xx with a
message a user understands and nothing is half-written.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

KEY_RE = re.compile(r"^[0-9a-f]{32}$")
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _no_control(value: str, what: str) -> str:
    for ch in value:
        if unicodedata.category(ch) == "Cc" and ch not in "\t":
            raise ValueError(f"{what} may not contain control characters such as {ch!r}")
    return value


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("a name may not be empty or blank")
    return _no_control(value, "a name")


def _scope_name(value: str) -> str:
    _name(value)
    if "/" in value or "\\" in value:
        raise ValueError(f"{value!r}: workspace and project names may not contain '/' or '\\'")
    if value in (".", ".."):
        raise ValueError("a workspace or project name may not be '.' or '..'")
    return value


def _key(value: str) -> str:
    if not KEY_RE.match(value):
        raise ValueError(f"{value!r} is not an experiment key (32 lowercase hex characters)")
    return value


Name = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_name)]
ScopeName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_scope_name)]
Key = Annotated[str, AfterValidator(_key)]
Tag = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentCreate(Strict):
    key: Key
    workspace: ScopeName
    project: ScopeName
    name: Name | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=1000)
    user: str | None = Field(default=None, max_length=200)


class Packed(Strict):
    """A column sent as base64 of little-endian bytes (the SDK's fast path)."""

    dtype: Literal["<i8", "<f8", "|u1"]
    b64: str


class SeriesIn(Strict):
    """Points of one metric, as parallel columns (lists, or packed arrays)."""

    name: Name
    steps: list[StrictInt] | Packed
    values: list[float | int | str] | Packed
    timestamps: list[StrictInt] | Packed | None = None
    epochs: list[StrictInt | None] | Packed | None = None
    int_values: Packed | None = None
    int_mask: Packed | None = None


ItemKind = Literal[
    "confusion_matrix", "curve", "table", "code", "environment", "packages", "git", "stdout", "command"
]


class ItemIn(Strict):
    kind: ItemKind
    name: Name
    step: StrictInt | None = None
    data: Any
    overwrite: bool = False


class BatchIn(Strict):
    """Everything a client sends in one go: applied in one transaction, at most once per batch_id."""

    batch_id: Annotated[str, Field(pattern=BATCH_ID_RE.pattern)]
    name: Name | None = None
    params: dict[Name, Any] = Field(default_factory=dict)
    others: dict[Name, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    metrics: list[SeriesIn] = Field(default_factory=list)
    items: list[ItemIn] = Field(default_factory=list)
    end: bool = False


class AssetMeta(Strict):
    file_name: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_name)]
    step: StrictInt | None = None
    metadata: dict[str, Any] | None = None
    upload_id: Annotated[str, Field(pattern=BATCH_ID_RE.pattern)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
