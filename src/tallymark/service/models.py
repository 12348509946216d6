"""Input models (pydantic) shared by the HTTP routes and the SDK's local transport.

Every write is validated here before anything touches a store, so bad input gets a 4xx with a
message a user understands and nothing is half-written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from tallymark.storable import INT64_MAX, INT64_MIN, name_problem, text_problem


def _anchored(pattern: str) -> re.Pattern[str]:
    # In Python's re, "$" also matches before a final "\n" ("1.0.0\n" would pass): end with \Z.
    # The plain patterns go to pydantic/FastAPI, whose Rust regex reads "$" as the end of the text.
    return re.compile(pattern.removesuffix("$") + r"\Z")


KEY_PATTERN = r"^[0-9a-f]{32}$"
BATCH_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
KEY_RE = _anchored(KEY_PATTERN)
BATCH_ID_RE = _anchored(BATCH_ID_PATTERN)


def _no_control(value: str, what: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return value


def _name(value: str) -> str:
    # The length is each field's own (Field(max_length=...)); the characters are the shared rule.
    problem = name_problem(value, max_length=None)
    if problem is not None:
        raise ValueError(problem if problem.startswith("a name") else f"a name {problem}")
    return value


def _scope_name(value: str) -> str:
    _name(value)
    if "/" in value or "\\" in value:
        raise ValueError(f"{value!r}: workspace and project names may not contain '/' or '\\'")
    if value in (".", ".."):
        raise ValueError("a workspace or project name may not be '.' or '..'")
    return value


def _prose(value: str) -> str:
    # Descriptions, comments, URIs: newlines are fine, but NUL is not (PostgreSQL text cannot hold
    # it: a 500 there) and neither are lone surrogates (no encoding can write them).
    if "\x00" in value:
        raise ValueError("text may not contain the NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return value


def _key(value: str) -> str:
    if not KEY_RE.match(value):
        raise ValueError(f"{value!r} is not an experiment key (32 lowercase hex characters)")
    return value


Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]  # what an INTEGER column holds
Name = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_name)]
ScopeName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_scope_name)]
# The first segment of a UI or API path cannot be a workspace, nor the second a project: /login,
# /api/…, /-/… and /{workspace}/artifacts would answer something else than that workspace's pages.
RESERVED_WORKSPACES = frozenset({"api", "-", "clientlib", "login", "logout", "docs", "redoc", "static"})
RESERVED_PROJECTS = frozenset({"artifacts", "models"})


def _not_reserved(reserved: frozenset[str], what: str) -> Any:
    def check(value: str) -> str:
        if value.lower() in reserved:
            names = ", ".join(sorted(reserved))
            raise ValueError(
                f"{value!r} is reserved for the server's own pages and cannot be a {what} ({names})"
            )
        return value

    return AfterValidator(check)


WorkspaceName = Annotated[ScopeName, _not_reserved(RESERVED_WORKSPACES, "workspace name")]
ProjectName = Annotated[ScopeName, _not_reserved(RESERVED_PROJECTS, "project name")]
Key = Annotated[str, AfterValidator(_key)]
Tag = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentCreate(Strict):
    key: Key
    workspace: WorkspaceName
    project: ProjectName
    name: Name | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=1000)
    user: Annotated[str, Field(max_length=200), AfterValidator(_prose)] | None = None


class Packed(Strict):
    """A column sent as base64 of little-endian bytes (the SDK's fast path)."""

    dtype: Literal["<i8", "<f8", "|u1"]
    b64: str


class SeriesIn(Strict):
    """Points of one metric, as parallel columns (lists, or packed arrays)."""

    name: Name
    steps: list[Int64] | Packed
    values: list[float | int | str] | Packed
    timestamps: list[Int64] | Packed | None = None
    epochs: list[Int64 | None] | Packed | None = None
    int_values: Packed | None = None
    int_mask: Packed | None = None


ItemKind = Literal[
    "confusion_matrix", "curve", "table", "code", "environment", "packages", "git", "stdout", "command"
]


class ItemIn(Strict):
    kind: ItemKind
    name: Name
    step: Int64 | None = None
    data: Any
    overwrite: bool = False


class BatchIn(Strict):
    """Everything a client sends in one go: applied in one transaction, at most once per batch_id."""

    batch_id: Annotated[str, Field(pattern=BATCH_ID_PATTERN)]
    name: Name | None = None
    params: dict[Name, Any] = Field(default_factory=dict)
    others: dict[Name, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    metrics: list[SeriesIn] = Field(default_factory=list)
    items: list[ItemIn] = Field(default_factory=list)
    end: bool = False


class AssetMeta(Strict):
    file_name: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_name)]
    step: Int64 | None = None
    metadata: dict[str, Any] | None = None
    upload_id: Annotated[str, Field(pattern=BATCH_ID_PATTERN)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


# --- artifacts, models, registry ---

SEMVER_RE = _anchored(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
ALIAS_RE = _anchored(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
STATUSES = ("development", "staging", "production", "archived")
Status = Literal["development", "staging", "production", "archived"]


def _semver(value: str) -> str:
    if not SEMVER_RE.match(value):
        raise ValueError(f"{value!r} is not a version: use MAJOR.MINOR.PATCH, e.g. 2.0.0")
    return value


def _alias(value: str) -> str:
    if not ALIAS_RE.match(value):
        raise ValueError(f"{value!r} is not an alias: letters, digits, '_', '.', '-' (max 100)")
    if SEMVER_RE.match(value):
        raise ValueError(f"alias {value!r} looks like a version number")
    return value


Version = Annotated[str, AfterValidator(_semver)]
Alias = Annotated[str, AfterValidator(_alias)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class FileIn(Strict):
    """One file of an artifact version or a model: a stored blob (sha256) or a remote URI."""

    logical_path: Annotated[str, Field(min_length=1, max_length=1000)]  # store/paths.py checks it
    sha256: Sha256 | None = None
    size: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    uri: Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_prose)] | None = None
    metadata: dict[str, Any] | None = None


class ArtifactVersionIn(Strict):
    artifact_type: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
    version: Version | None = None
    aliases: list[Alias] = Field(default_factory=list, max_length=100)
    version_tags: list[Tag] = Field(default_factory=list, max_length=1000)
    metadata: dict[str, Any] | None = None
    files: list[FileIn] = Field(default_factory=list, max_length=100_000)
    experiment_key: Key | None = None


class ModelIn(Strict):
    name: ScopeName
    files: list[FileIn] = Field(default_factory=list, max_length=100_000)
    remote_uri: Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_prose)] | None = None
    metadata: dict[str, Any] | None = None


class RegisterIn(Strict):
    experiment_key: Key
    experiment_model: ScopeName
    version: Version | None = None
    status: Status = "development"
    description: Annotated[str, Field(max_length=10_000), AfterValidator(_prose)] | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=1000)


class StatusRequestIn(Strict):
    status: Status
    comment: Annotated[str, Field(max_length=10_000), AfterValidator(_prose)] | None = None


class DecisionIn(Strict):
    comment: Annotated[str, Field(max_length=10_000), AfterValidator(_prose)] | None = None


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: M | dict[str, Any] | None) -> M:
    """``data`` as ``model``; validation errors become :class:`Invalid` with a readable message."""
    from pydantic import ValidationError

    from tallymark.service.errors import Invalid

    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        raise Invalid(
            "; ".join(parts),
            [{"loc": list(e.get("loc", ())), "message": e.get("msg")} for e in exc.errors()[:20]],
        ) from None
