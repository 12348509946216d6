"""Settings: declared once, each with its default, limit and help; passed explicitly, never global.

``Settings.from_env()`` is the only place that reads the environment (``TALLYMARK_HOME``,
``TALLYMARK_URL``…); servers, the embedded store and tests build a ``Settings`` and hand it over.
tests/test_settings.py fails when a setting is missing from docs/settings.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
WORKER_SETTINGS_ENV = "TALLYMARK_SERVER_SETTINGS"

# Variables one tallymark process hands to a child it starts. They are not settings (nobody sets
# them by hand); they are named here so that this module stays the one place that names
# TALLYMARK_ variables.
JOB_SINK_ENV = "TALLYMARK_JOB_SINK"  # a detached job supervisor's sink settings (JSON; taken, not inherited)
JOB_NAME_ENV = "TALLYMARK_JOB_NAME"  # given to a job's script: the job's name
JOB_WORKSPACE_ENV = "TALLYMARK_JOB_WORKSPACE"  # given to a job's script: the job's workspace
DASK_SCHEDULER_ENV = "TALLYMARK_DASK_SCHEDULER"  # given to the built-in trainer on a Dask backend


def take_handoff(name: str) -> str | None:
    """Read a hand-off variable and remove it from this process's environment, so that what this
    process starts (a job's script) does not inherit it: it may carry an API key."""
    return os.environ.pop(name, None)


def _setting(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best here
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path("~/.tallymark"), "Embedded home: tallymark.db and blobs/ live here.")
    db_url: str | None = _setting(None, "Metadata database URL; default sqlite:///HOME/tallymark.db.")
    blobs: str | None = _setting(None, "Blob store: a folder or s3://bucket/prefix; default HOME/blobs.")
    s3_endpoint_url: str | None = _setting(None, "Endpoint of an S3-compatible server for s3:// blobs.")
    panels_dir: str | None = _setting(None, "Extra folder of custom UI panel files (besides HOME/panels).")
    public_url: str = _setting("http://127.0.0.1:5118", "Base URL of the UI, used in experiment URLs.")
    loopback_only: bool = _setting(
        True, "Answer only requests addressed to localhost, a loopback IP or public_url's host (421)."
    )
    auth: bool = _setting(
        False, "Authenticate every request by API key or session (tallymark server without --no-auth)."
    )
    max_body_bytes: int = _setting(64 * MiB, "Largest JSON request body, after decompression (413).")
    max_asset_bytes: int = _setting(20 * 1024 * MiB, "Largest single asset upload (413).")
    max_value_bytes: int = _setting(1 * MiB, "Largest encoded parameter/other value or tag (422).")
    max_item_bytes: int = _setting(16 * MiB, "Largest structured item: table, code, matrix (422).")
    max_points_per_batch: int = _setting(5_000_000, "Most metric points in one batch (422).")
    chunk_points: int = _setting(16_384, "Metric points per stored chunk before a new one starts.")
    audit_key_path: str | None = _setting(
        None,
        "Ed25519 key that signs audit checkpoints, kept outside the database; default HOME/audit.key "
        "(created with mode 0600 on first use).",
    )
    audit_checkpoint_entries: int = _setting(
        1000, "Sign an audit checkpoint after this many new entries (also: tallymark audit checkpoint)."
    )
    audit_checkpoint_minutes: float = _setting(
        60.0, "Sign an audit checkpoint when the newest is older than this and entries were added."
    )
    secret_path: str | None = _setting(
        None,
        "Server secret that signs login links and CSRF tokens, kept outside the database; default "
        "HOME/server.secret (created with mode 0600 on first use).",
    )
    job_log_max_bytes: int = _setting(
        8 * MiB, "Most bytes of a job's output kept in the store: its head and newest tail (docs/jobs.md)."
    )

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):  # accept str paths too
            object.__setattr__(self, "home", Path(self.home))

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        base = cls(
            home=Path(env.get("TALLYMARK_HOME", "~/.tallymark")),
            public_url=env.get("TALLYMARK_PUBLIC_URL", cls.public_url),
            db_url=env.get("TALLYMARK_DB") or None,
            blobs=env.get("TALLYMARK_BLOBS") or None,
            s3_endpoint_url=env.get("TALLYMARK_S3_ENDPOINT_URL") or None,
            panels_dir=env.get("TALLYMARK_PANELS_DIR") or None,
            audit_key_path=env.get("TALLYMARK_AUDIT_KEY") or None,
            secret_path=env.get("TALLYMARK_SECRET_PATH") or None,
            job_log_max_bytes=int(env.get("TALLYMARK_JOB_LOG_MAX_BYTES") or cls.job_log_max_bytes),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def export_to_workers(self) -> None:
        """Hand these settings to uvicorn worker processes, which inherit the environment but cannot
        receive Python objects (read back by :meth:`from_worker_env`)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["home"] = str(self.home)
        os.environ[WORKER_SETTINGS_ENV] = json.dumps(data)

    @classmethod
    def from_worker_env(cls) -> Settings:
        raw = json.loads(os.environ[WORKER_SETTINGS_ENV])
        raw["home"] = Path(raw["home"])
        return cls(**raw)

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home_path / 'tallymark.db'}"

    @property
    def blobs_url(self) -> str:
        return self.blobs or str(self.home_path / "blobs")

    @property
    def audit_key_file(self) -> Path:
        return Path(self.audit_key_path).expanduser() if self.audit_key_path else self.home_path / "audit.key"

    @property
    def secret_file(self) -> Path:
        return Path(self.secret_path).expanduser() if self.secret_path else self.home_path / "server.secret"


def documented() -> dict[str, str]:
    """Every setting with its help text (used by docs and their test)."""
    return {f.name: f.metadata["help"] for f in fields(Settings)}


# --- client settings -------------------------------------------------------------------------------


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the variable or argument."""


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers with arbitrary uids), no LOGNAME/USER
        getuid = getattr(os, "getuid", None)
        return f"uid-{getuid()}" if getuid is not None else "unknown"


def _text(raw: str) -> str:
    return raw.strip()


def _seconds(raw: str) -> float:
    return float(raw)


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(raw)


def _delays(raw: str) -> tuple[float, ...]:
    return tuple(float(part) for part in raw.split(",") if part.strip())


def _client(
    default: Any,
    help: str,  # noqa: A002 - "help" reads best here
    env: str,
    parse: Any = _text,
    limits: tuple[float, float] | None = None,
    repr: bool = True,  # noqa: A002 - the dataclass field option it is passed to
) -> Any:
    meta = {"help": help, "env": env, "parse": parse, "limits": limits}
    return field(default=default, metadata=meta, repr=repr)


@dataclass(frozen=True)
class ClientSettings:
    """What the SDK and the CLI's client commands run with: where to log, as whom, how to batch and retry.

    ``from_env()`` is the only place the client reads the environment; ``Experiment``, ``API`` and
    the transports take one of these (``settings=``) and their own arguments (``url=``,
    ``api_key=``…) override it. Built once per ``Experiment``/``API``: changing the environment
    afterwards does not change an object already created.
    """

    url: str | None = _client(
        None, "Server to log to and read from; none = the embedded home.", "TALLYMARK_URL"
    )
    api_key: str | None = _client(
        None,
        "API key sent as `Authorization: Bearer` (never shown in repr or logs).",
        "TALLYMARK_API_KEY",
        repr=False,
    )
    user: str = _client(
        "", "Identity in the embedded home and on a --no-auth server; default the OS user.", "TALLYMARK_USER"
    )
    workspace: str = _client(
        "default", "Workspace of an Experiment() created without one.", "TALLYMARK_WORKSPACE"
    )
    project: str = _client("general", "Project of an Experiment() created without one.", "TALLYMARK_PROJECT")
    home: Path = _client(
        Path("~/.tallymark"),
        "Embedded home; also holds journals and offline archives.",
        "TALLYMARK_HOME",
        Path,
    )
    journal_dir: Path | None = _client(
        None, "Where journals of unsent batches go; default HOME/journal.", "TALLYMARK_JOURNAL_DIR", Path
    )
    offline_dir: Path | None = _client(
        None, "Where OfflineExperiment archives go; default HOME/offline.", "TALLYMARK_OFFLINE_DIR", Path
    )
    public_url: str | None = _client(
        None,
        "Base of exp.url when the store gives none; default the URL, else http://127.0.0.1:5118.",
        "TALLYMARK_PUBLIC_URL",
    )
    send_interval: float = _client(
        1.0,
        "Seconds between background sends of buffered data.",
        "TALLYMARK_SEND_INTERVAL",
        _seconds,
        (0.01, 3600),
    )
    max_points_per_batch: int = _client(
        500_000,
        "Most metric points per batch; larger backlogs are split.",
        "TALLYMARK_MAX_POINTS_PER_BATCH",
        int,
        (1, 5_000_000),
    )
    retry_delays: tuple[float, ...] = _client(
        (0.2, 0.5, 1.0, 2.0, 4.0),
        "Seconds between retries of an unavailable server (comma-separated).",
        "TALLYMARK_RETRY_DELAYS",
        _delays,
        (0, 600),
    )
    retry_budget: float = _client(
        15.0,
        "Seconds one send spends retrying before the batch goes to the journal.",
        "TALLYMARK_RETRY_BUDGET",
        _seconds,
        (0, 3600),
    )
    recheck_after: float = _client(
        5.0,
        "Seconds a server found down is not retried (batches go to the journal at once).",
        "TALLYMARK_RECHECK_AFTER",
        _seconds,
        (0, 3600),
    )
    request_timeout: float = _client(
        30.0,
        "Seconds an HTTP request may take before the server counts as unavailable.",
        "TALLYMARK_REQUEST_TIMEOUT",
        _seconds,
        (0.1, 3600),
    )
    system_metrics_interval: float = _client(
        10.0,
        "Seconds between system metric samples (CPU, memory, GPU).",
        "TALLYMARK_SYSTEM_METRICS_INTERVAL",
        _seconds,
        (0.1, 86400),
    )
    # -- jobs (tallymark.jobs, docs/jobs.md) ------------------------------------------------------
    job_namespace: bool = _client(
        True,
        "Give each local job a private mount namespace with its root at /opt/ml; off: the SM_* "
        "variables name the root's real paths and a script that hard-codes /opt/ml fails.",
        "TALLYMARK_JOB_NAMESPACE",
        _flag,
    )
    # -- an endpoint's prediction log (tallymark.serving.predlog, docs/prediction-log.md) ----------
    prediction_queue_rows: int = _client(
        100_000,
        "Rows an endpoint's prediction log holds in memory before it drops (counted).",
        "TALLYMARK_PREDICTION_QUEUE_ROWS",
        int,
        (1, 100_000_000),
    )
    prediction_spool_bytes: int = _client(
        1 << 30,
        "Bytes of an endpoint's on-disk prediction spool before it drops (counted); 0 = no log.",
        "TALLYMARK_PREDICTION_SPOOL_BYTES",
        int,
        (0, 1 << 50),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _client_problem(f, getattr(self, f.name))
            if problem:
                raise SettingsError(f"ClientSettings.{f.name}={_shown(f, getattr(self, f.name))}: {problem}")
        if isinstance(self.home, str):
            object.__setattr__(self, "home", Path(self.home))
        for name in ("journal_dir", "offline_dir"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        if isinstance(self.retry_delays, list):
            object.__setattr__(self, "retry_delays", tuple(self.retry_delays))
        if not self.user.strip():
            object.__setattr__(self, "user", _os_user())
        if self.url:
            object.__setattr__(self, "url", self.url.rstrip("/"))

    def __repr__(self) -> str:
        # The key is a credential: repr lands in logs, tracebacks and notebooks.
        shown = ", ".join(f"{f.name}={_shown(f, getattr(self, f.name))}" for f in fields(self))
        return f"ClientSettings({shown})"

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientSettings:
        """The environment's settings, with ``overrides`` (``None`` = not given) on top.

        An empty variable counts as unset; a value that cannot be parsed or is out of range raises
        :class:`SettingsError` naming the variable, before anything is logged."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            try:
                value = f.metadata["parse"](raw)
            except ValueError:
                value = None
            problem = "cannot be parsed" if value is None else _client_problem(f, value)
            if problem:
                shown = "(hidden)" if not f.repr else repr(raw)
                raise SettingsError(f"${f.metadata['env']}={shown}: {problem}; expected {_expected(f)}")
            values[f.name] = value
        return cls(**values).with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> ClientSettings:
        """A copy with the given values (``None`` leaves a setting as it is)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def journal_path(self) -> Path:
        return (self.journal_dir or self.home / "journal").expanduser()

    @property
    def offline_path(self) -> Path:
        return (self.offline_dir or self.home / "offline").expanduser()

    def child_environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` (usually a copy of ``os.environ``) with the variables that make a child process
        act with these settings: the server, key, home and user (unset ones removed)."""
        env = dict(base)
        for f in fields(self):
            if f.name not in ("url", "api_key", "home", "user"):
                continue
            value = getattr(self, f.name)
            if value:
                env[f.metadata["env"]] = str(value.expanduser() if isinstance(value, Path) else value)
            else:
                env.pop(f.metadata["env"], None)
        return env

    @property
    def ui_base(self) -> str:
        return (self.public_url or self.url or "http://127.0.0.1:5118").rstrip("/")


def _shown(f: Any, value: Any) -> str:
    if not f.repr and value:
        return "'***'"
    return repr(value)


def _expected(f: Any) -> str:
    limits = f.metadata["limits"]
    kind = {
        _seconds: "seconds",
        int: "a whole number",
        _delays: "comma-separated seconds",
        _flag: "1/on/true/yes or 0/off/false/no",
    }.get(f.metadata["parse"], "a value")
    return f"{kind} from {limits[0]:g} to {limits[1]:g}" if limits else kind


def _client_problem(f: Any, value: Any) -> str | None:
    """Why ``value`` cannot be this setting (``None`` when it can)."""
    limits = f.metadata["limits"]
    if f.name == "url" and value and not str(value).startswith(("http://", "https://")):
        return "a server URL starts with http:// or https://"
    if limits is None:
        return None
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item != item:
            return f"{item!r} is not a number"
        if f.metadata["parse"] is int and not isinstance(item, int):
            return f"{item!r} is not a whole number"
        if not limits[0] <= item <= limits[1]:
            return f"{item:g} is outside {limits[0]:g}..{limits[1]:g}"
    if isinstance(value, (tuple, list)) and len(value) > 20:
        return "at most 20 retries"
    return None


def documented_client() -> dict[str, tuple[str, str]]:
    """Every client setting with its environment variable and help text (docs and their test)."""
    return {f.name: (f.metadata["env"], f.metadata["help"]) for f in fields(ClientSettings)}
