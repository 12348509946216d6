"""``Experiment`` and ``OfflineExperiment``: what a training script logs through.

>>> exp = Experiment(project_name="fraud-detection", workspace="risk-team")   # doctest: +SKIP
>>> exp.log_parameters({"learning_rate": 0.15, "num_round": 100})             # doctest: +SKIP
>>> for step in range(100):                                                    # doctest: +SKIP
...     exp.log_metric("validation_auc", 0.9 + step / 1000, step=step)
>>> exp.end()                                                                  # doctest: +SKIP

``log_metric`` only appends to an in-memory buffer (about a microsecond); a background thread ships
batches. ``flush()`` returns once everything logged before it is durable (or journaled on disk when
the server is unreachable); ``end()`` flushes and marks the experiment ended.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tallymark import jsonvalue, storable
from tallymark.sdk.identity import current_user
from tallymark.sdk.journal import Journal, zip_folder
from tallymark.sdk.sender import Sender, _warn
from tallymark.sdk.transport import LocalTransport, TallymarkError, Unavailable, default_transport
from tallymark.sdk.wire import NO_EPOCH
from tallymark.settings import ClientSettings, Settings

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_live: weakref.WeakSet[Experiment] = weakref.WeakSet()
_atexit_registered = False
_registry_lock = threading.Lock()


class ExperimentEnded(RuntimeError):
    """Raised when logging to an experiment after ``end()``."""


def _end_all() -> None:
    for exp in list(_live):
        try:
            exp.end()
        except Exception as exc:  # at exit, say what went wrong but let the others finish
            _warn(f"could not end experiment {exp.get_key()}: {exc}")


def _coerce_metric(name: str, value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            shown = value if abs(value) < 10**30 else f"of about {storable._digits(value)} digits"
            raise ValueError(f"the integer {shown} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return _coerce_metric(name, item())
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"metric {name!r} must be a number, not {type(value).__name__} {value!r:.50}")
    return float(value)


def _flatten(mapping: Mapping[str, Any], prefix: str | None, sep: str = ".") -> dict[str, Any]:
    # A loop, not recursion: a dict nested 100k deep must give a warning, not a RecursionError.
    # A name grown past the limit stops the descent (it is refused as a name).
    out: dict[str, Any] = {}
    stack = [(prefix, iter(mapping.items()))]
    while stack:
        pre, items = stack[-1]
        for k, v in items:
            full = f"{pre}{sep}{k}" if pre else str(k)
            if isinstance(v, Mapping) and v and len(full) <= storable.MAX_NAME:
                stack.append((full, iter(v.items())))
                break
            out[full] = v
        else:
            stack.pop()
    return out


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a string, not {type(name).__name__}")
    problem = storable.name_problem(name)
    if problem is not None:
        raise ValueError(f"{what} name {name!r:.60}: {problem}")
    return name


def _name_problem(what: str, name: Any) -> str | None:
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a string, not {type(name).__name__}")
    return storable.name_problem(name)


def _plain_value(what: str, value: Any, limit: int = Settings.max_value_bytes) -> tuple[Any, str | None]:
    """The value as plain JSON data, or why the store cannot hold it (:mod:`tallymark.storable`).

    A wrong type raises TypeError (it shows on the first run); a value the store cannot hold is
    returned as a problem to warn about, since it may depend on the data and appear hours in.
    """
    problem = storable.value_problem(value)
    if problem is not None:
        return None, problem
    try:
        text = jsonvalue.dumps(value)
    except TypeError as exc:
        raise TypeError(f"{what}: {exc}") from None
    size = len(text.encode())
    if size > limit:
        return None, f"it is {size:,} bytes encoded; the limit is {limit:,} bytes"
    return jsonvalue.to_plain(value), None


class Experiment:
    """One tracked run. See DESIGN §2 for the full contract; every method returns quickly."""

    def __init__(
        self,
        project_name: str | None = None,
        workspace: str | None = None,
        api_key: str | None = None,
        url: str | None = None,
        name: str | None = None,
        tags: Iterable[str] | None = None,
        log_code: bool = True,
        log_env: bool = True,
        log_git: bool = True,
        log_system_metrics: bool = True,
        capture_stdout: bool = True,
        *,
        system_metrics_interval: float | None = None,
        send_interval: float | None = None,
        settings: ClientSettings | None = None,
        _offline_directory: str | Path | None = None,
        _existing_key: str | None = None,
    ) -> None:
        # Read once: arguments win over ``settings``, which default to the environment.
        self._settings = (settings or ClientSettings.from_env()).with_overrides(
            project=project_name or None,
            workspace=workspace or None,
            url=url or None,
            api_key=api_key or None,
            send_interval=send_interval,
            system_metrics_interval=system_metrics_interval,
        )
        self.project_name = self._settings.project
        self.workspace = self._settings.workspace
        # _existing_key: log into an experiment that exists (create is idempotent by key); see detach().
        self._key = _existing_key or uuid.uuid4().hex
        self._ended = False
        self._step: int | None = None
        self._epoch: int | None = None
        self._auto_steps: dict[str, int] = {}
        self._user = self._settings.user
        offline = _offline_directory is not None
        self._offline_directory = Path(_offline_directory).expanduser() if offline else None
        self._transport = None if offline else default_transport(settings=self._settings)
        tag_list = [_check_name("tag", t) for t in (tags or [])]
        body = {
            "key": self._key,
            "workspace": self.workspace,
            "project": self.project_name,
            "name": name,
            "tags": tag_list,
            "user": self._user,
        }
        if offline:
            folder = self._offline_directory / f".{self._key}"  # type: ignore[operator]
        else:
            folder = self._settings.journal_path / self._key
        # The journal keeps the create request, so a journal left on disk is a complete upload.
        self._journal = Journal(folder, experiment=body, origin=getattr(self._transport, "url", None))
        self._url = None
        pending_create: dict[str, Any] | None = None
        if offline:
            self._journal.write_experiment(body)
        else:
            try:
                info = self._transport.create_experiment(body)  # type: ignore[union-attr]
                self._url = info.get("url")
            except Unavailable as exc:
                _warn(f"{exc}; logging to the journal at {folder} until the server answers")
                pending_create = body
        self.name = name
        self._sender = Sender(
            self._transport, self._key, self._journal, offline=offline, settings=self._settings
        )
        self._sender.pending_create = pending_create  # created by the sender once the server answers
        self._buffers = self._sender.metric_buffers
        self._refused: set[str] = set()
        self._capture = None
        self._monitor = None
        self._autolog = (log_code, log_env, log_git)
        if any(self._autolog):
            # Autolog (pip packages, git, code) runs on the sender thread, before the first send.
            prev = self._sender.before_first_send

            def first() -> None:
                if prev:
                    prev()
                self._collect_autolog()

            self._sender.before_first_send = first
        if capture_stdout:
            from tallymark.sdk.autolog.stdout import OutputCapture

            self._capture = OutputCapture(self._sender.stdout)
            self._capture.start()
        if log_system_metrics:
            from tallymark.sdk.autolog.system import SystemMonitor

            self._sys_step = 0
            self._monitor = SystemMonitor(
                self._on_system_sample, interval=self._settings.system_metrics_interval
            )
            self._monitor.start()
        self._sender.start()
        self._sender.wake()
        global _atexit_registered
        with _registry_lock:
            _live.add(self)
            if not _atexit_registered:
                atexit.register(_end_all)
                _atexit_registered = True

    # ----- identity -----
    def get_key(self) -> str:
        """The experiment's key: 32 hex characters, generated by the client."""
        return self._key

    @property
    def url(self) -> str:
        """The UI page of this experiment."""
        if self._url:
            return self._url
        from urllib.parse import quote

        ws, proj = quote(self.workspace, safe=""), quote(self.project_name, safe="")
        return f"{self._settings.ui_base}/{ws}/{proj}/{self._key}"

    def _retry_create(self) -> None:
        if self._sender.pending_create is None or self._transport is None:
            return
        try:
            self._sender._create()
        except (Unavailable, TallymarkError):
            pass  # still pending: the sender tries again on its next send

    def _collect_autolog(self) -> None:
        log_code, log_env, log_git = self._autolog
        from tallymark.sdk import autolog

        try:
            if log_env:
                env = autolog.collect_environment() | {"user": self._user}  # the settings' identity
                self._sender.item({"kind": "environment", "name": "environment", "data": env})
                pkgs = autolog.installed_packages()
                self._sender.item(
                    {
                        "kind": "packages",
                        "name": "packages",
                        "data": {"packages": pkgs, "requirements": autolog.as_requirements(pkgs)},
                    }
                )
            if log_git:
                git = autolog.collect_git()
                if git:
                    self._sender.item({"kind": "git", "name": "git", "data": git})
            if log_code:
                code = autolog.collect_code()
                if code:
                    self._sender.item({"kind": "code", "name": code.get("file_name") or "code", "data": code})
        except Exception as exc:  # autolog must never break a training run
            _warn(f"autolog failed: {exc!r}")

    def _on_system_sample(self, values: dict[str, float], timestamp_ms: int) -> None:
        if self._ended:
            return
        step = self._sys_step
        self._sys_step += 1
        ts = timestamp_ms / 1000.0
        for name, v in values.items():
            self.log_metric(name, float(v), step=step, timestamp=ts)

    # ----- metrics: the hot path -----
    def log_metric(
        self,
        name: str,
        value: Any,
        step: int | None = None,
        epoch: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Record one point. ``timestamp`` is seconds since the epoch (default: now).

        Without ``step``, the step set by :meth:`set_step` is used, else the metric's own count.
        """
        if self._ended:
            raise ExperimentEnded(f"experiment {self._key} has ended")
        buf = self._buffers.get(name)
        if type(value) is not float:
            try:
                value = _coerce_metric(name, value)
            except ValueError as exc:
                self._refuse(f"metric {name!r:.100}", str(exc))
                return
            if type(value) is int and (buf is None or buf.iv is None):
                if buf is None and not self._metric_name_ok(name):
                    return
                buf = self._sender.int_buffer(name)
        if buf is None:
            if not self._metric_name_ok(name):
                return
            buf = self._sender.new_buffer(name, False)
        if step is None:
            if self._step is not None:
                step = self._step
            else:
                step = self._auto_steps.get(name, -1) + 1
                self._auto_steps[name] = step
        try:
            if type(step) is not int:
                step = self._check_step(step)
            if epoch is None:
                epoch = self._epoch if self._epoch is not None else NO_EPOCH
            elif type(epoch) is not int or not INT64_MIN < epoch <= INT64_MAX:
                epoch = self._check_step(epoch)
        except ValueError as exc:
            self._refuse(f"metric {name!r:.100}", str(exc))
            return
        # Appends in this order: steps first (may overflow before anything is written), time last.
        try:
            buf.s.append(step)
        except OverflowError:
            self._refuse(f"metric {name!r:.100}", f"the step {step} does not fit in 64 bits")
            return
        buf.v.append(value)
        buf.e.append(epoch)
        if buf.iv is not None:
            if type(value) is int:
                buf.iv.append(value)
                buf.im.append(1)
            else:
                buf.iv.append(0)
                buf.im.append(0)
        buf.t.append(time.time() if timestamp is None else timestamp)

    @staticmethod
    def _check_step(step: Any) -> int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise TypeError(f"step must be an integer, not {type(step).__name__} {step!r}")
        value = int(step.__index__())
        if not INT64_MIN < value <= INT64_MAX:
            raise ValueError(f"step/epoch {value} does not fit in 64 bits")
        return value

    def log_metrics(
        self,
        mapping: Mapping[str, Any],
        step: int | None = None,
        epoch: int | None = None,
        prefix: str | None = None,
    ) -> None:
        """Log several metrics at the same step; nested dicts become ``a.b`` names."""
        for k, v in _flatten(mapping, prefix).items():
            self.log_metric(k, v, step=step, epoch=epoch)

    def set_step(self, step: int | None) -> None:
        """The step used by metrics logged without one (None: count per metric)."""
        self._step = None if step is None else self._check_step(step)

    def set_epoch(self, epoch: int | None) -> None:
        self._epoch = None if epoch is None else self._check_step(epoch)

    def _refuse(self, what: str, problem: str) -> None:
        """Warn (once per value and reason) that something was not logged; training goes on."""
        message = f"{what} was not logged: {problem}"
        if message not in self._refused and len(self._refused) <= 1000:
            self._refused.add(message)
            _warn(message if len(self._refused) <= 1000 else "more values were not logged (not shown)")

    def _metric_name_ok(self, name: Any) -> bool:
        problem = _name_problem("metric", name)
        if problem is not None:
            self._refuse(f"metric {name!r:.100}", problem)
        return problem is None

    def _checked(self, what: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``mapping`` the store can hold, as plain values; the rest warned about."""
        out = {}
        for k, v in mapping.items():
            problem = _name_problem(what, k)
            if problem is None:
                v, problem = _plain_value(f"{what} {k!r}", v)
            if problem is not None:
                self._refuse(f"{what} {k!r:.100}", problem)
            else:
                out[k] = v
        return out

    # ----- parameters, others, tags, name -----
    def _live_check(self) -> None:
        if self._ended:
            raise ExperimentEnded(f"experiment {self._key} has ended")

    def log_parameter(self, name: str, value: Any) -> None:
        self.log_parameters({name: value})

    def log_parameters(self, mapping: Mapping[str, Any], prefix: str | None = None) -> None:
        """Log hyperparameters; nested dicts are flattened to ``a.b`` names."""
        self._live_check()
        flat = self._checked("parameter", _flatten(mapping, prefix))
        if flat:
            self._sender.params(flat)

    def log_other(self, key: str, value: Any) -> None:
        self.log_others({key: value})

    def log_others(self, mapping: Mapping[str, Any]) -> None:
        self._live_check()
        checked = self._checked("other", mapping)
        if checked:
            self._sender.others(checked)

    def set_name(self, name: str) -> None:
        self._live_check()
        problem = _name_problem("experiment", name)
        if problem is not None:
            self._refuse(f"experiment name {name!r:.100}", problem)
            return
        self.name = name
        self._sender.name(name)

    def add_tag(self, tag: str) -> None:
        self.add_tags([tag])

    def add_tags(self, tags: Iterable[str]) -> None:
        self._live_check()
        kept = []
        for t in tags:
            problem = _name_problem("tag", t)
            if problem is not None:
                self._refuse(f"tag {t!r:.100}", problem)
            else:
                kept.append(t)
        if kept:
            self._sender.tags(kept)

    # ----- structured items -----
    def _item(
        self, kind: str, name: str, data: Any, step: int | None = None, overwrite: bool = False
    ) -> None:
        self._live_check()
        what = f"{kind.replace('_', ' ')} {name!r:.100}"
        problem = _name_problem(kind, name) or storable.value_problem(data)
        if problem is None:
            size, limit = len(jsonvalue.dumps(data).encode()), Settings.max_item_bytes
            if size > limit:
                problem = f"it is {size:,} bytes encoded; the limit is {limit:,} bytes"
        if problem is None:
            data = json_ready(data)
            try:  # the shape the server checks: a malformed item would cost the whole batch
                storable.validate_item(kind, name, jsonvalue.decode_tagged(data))
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            self._refuse(what, problem)
            return
        item = {"kind": kind, "name": name, "data": data, "overwrite": overwrite}
        if step is not None:
            item["step"] = self._check_step(step)
        self._sender.item(item)

    def log_confusion_matrix(
        self,
        y_true: Any = None,
        y_predicted: Any = None,
        matrix: Any = None,
        labels: list[str] | None = None,
        title: str = "Confusion Matrix",
        step: int | None = None,
    ) -> None:
        """Log a confusion matrix: give ``matrix`` (rows = actual, columns = predicted) or the
        true and predicted labels (class labels, or one-hot/probability rows)."""
        if matrix is None:
            if y_true is None or y_predicted is None:
                raise ValueError("log_confusion_matrix needs matrix= or both y_true= and y_predicted=")
            matrix, found = _confusion(y_true, y_predicted)
            labels = labels or [str(x) for x in found]
        matrix = jsonvalue.to_plain(matrix)
        if labels is not None:
            labels = [str(x) for x in labels]
        self._item("confusion_matrix", title, {"matrix": matrix, "labels": labels, "title": title}, step)

    def log_curve(self, name: str, x: Any, y: Any, overwrite: bool = False, step: int | None = None) -> None:
        """Log an (x, y) curve such as ROC or precision-recall."""
        self._item("curve", name, {"x": x, "y": y}, step, overwrite)

    def log_table(self, file_name: str, data: Any) -> None:
        """Log a table: a pandas DataFrame, a list of dicts, or a list of rows (first row = header)."""
        problem = storable.value_problem(data)  # before _table turns it into lists (no recursion)
        if problem is not None:
            self._refuse(f"table {file_name!r:.100}", problem)
            return
        self._item("table", file_name, _table(data))

    def log_code(self, path: str | Path | None = None) -> None:
        """Log source code: the given file, else the calling script or notebook."""
        from tallymark.sdk.autolog import collect_code

        code = collect_code(str(path) if path is not None else None)
        if code is None:
            raise ValueError("no source code found to log (pass path=)")
        self._item("code", code.get("file_name") or "code", code)

    def log_asset(
        self,
        path_or_file: Any,
        file_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        step: int | None = None,
    ) -> None:
        """Upload a file (path or binary file object) as an asset of this experiment."""
        self._live_check()
        cleanup = False
        if isinstance(path_or_file, (str, os.PathLike)):
            path = Path(path_or_file)
            if path.is_dir():
                from tallymark.store.paths import safe_walk

                # The whole folder is checked first: a symlink out of it (say to /proc/self/environ)
                # refuses the upload before any file is sent, as Artifact.add does.
                for entry in safe_walk(path):
                    self.log_asset(
                        entry.path, f"{file_name or path.name}/{entry.logical_path}", metadata, step
                    )
                return
            if not path.is_file():
                raise FileNotFoundError(f"no file at {path}")
            file_name = file_name or path.name
        else:
            read = getattr(path_or_file, "read", None)
            if not callable(read):
                raise TypeError("log_asset takes a path or a binary file object")
            fd, tmp = tempfile.mkstemp(prefix="tallymark-asset-")
            with os.fdopen(fd, "wb") as out:
                while data := read(1 << 20):
                    out.write(data.encode() if isinstance(data, str) else data)
            path, cleanup = Path(tmp), True
            file_name = file_name or getattr(path_or_file, "name", None) or "asset"
            file_name = os.path.basename(str(file_name))
        meta = {"file_name": _check_name("asset", file_name), "upload_id": uuid.uuid4().hex}
        if step is not None:
            meta["step"] = self._check_step(step)
        if metadata is not None:
            plain, problem = _plain_value("asset metadata", dict(metadata), Settings.max_item_bytes)
            if problem is None:
                meta["metadata"] = plain
            else:  # the file is what matters: upload it without the metadata
                self._refuse(f"the metadata of asset {file_name!r:.100}", problem)
        self._sender.asset(meta, path, cleanup)

    # ----- artifacts, models, registry (synchronous: they return what was stored) -----
    def _online(self, what: str) -> Any:
        self._live_check()
        if self._transport is None:
            raise TallymarkError(f"{what} needs a store: it is not available in an OfflineExperiment", 400)
        if self._sender.pending_create is not None:
            self._retry_create()
            if self._sender.pending_create is not None:
                raise Unavailable(f"{what}: the server is unreachable")
        return self._transport

    def log_artifact(self, artifact: Any) -> Any:
        """Upload the artifact's new files and record the next version, produced by this experiment."""
        from tallymark.sdk.artifact import LoggedArtifact, upload_files

        t = self._online("log_artifact")
        manifest = upload_files(t, artifact._items)
        body = {
            "artifact_type": artifact.artifact_type,
            "version": artifact.version,
            "aliases": list(artifact.aliases),
            "version_tags": list(artifact.version_tags),
            "metadata": None if artifact.metadata is None else json_ready(artifact.metadata),
            "files": manifest,
            "experiment_key": self._key,
        }
        info = t.call("log_artifact_version", workspace=self.workspace, name=artifact.name, body=body)
        return LoggedArtifact(t, info)

    def get_artifact(
        self, name: str, version_or_alias: str | None = None, workspace: str | None = None
    ) -> Any:
        """Fetch an artifact version (latest, a version or an alias) and record that this experiment
        consumed it."""
        from tallymark.sdk.artifact import LoggedArtifact

        t = self._online("get_artifact")
        info = t.call(
            "consume_artifact",
            workspace=workspace or self.workspace,
            name=name,
            version_or_alias=version_or_alias,
            experiment_key=self._key,
        )
        return LoggedArtifact(t, info)

    def log_model(
        self, name: str, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Upload a model file or folder (hashed, into the blob store) under ``name``."""
        from tallymark.sdk.artifact import Artifact, upload_files

        t = self._online("log_model")
        holder = Artifact(name)
        p = Path(path)
        holder.add(p, logical_path=p.name)
        manifest = upload_files(t, holder._items)
        return t.call(
            "log_model",
            key=self._key,
            body={
                "name": name,
                "files": manifest,
                "metadata": None if metadata is None else json_ready(metadata),
            },
        )

    def log_remote_model(
        self, model_name: str, uri: str, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record a model that lives elsewhere (s3://…, a model server) by its URI."""
        t = self._online("log_remote_model")
        return t.call(
            "log_model",
            key=self._key,
            body={
                "name": model_name,
                "remote_uri": uri,
                "metadata": None if metadata is None else json_ready(metadata),
            },
        )

    def register_model(
        self,
        model_name: str,
        version: str | None = None,
        status: str = "development",
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register the model this experiment logged as ``model_name`` in the workspace's registry."""
        t = self._online("register_model")
        return t.call(
            "register_model",
            workspace=self.workspace,
            name=model_name,
            body={
                "experiment_key": self._key,
                "experiment_model": model_name,
                "version": version,
                "status": status,
                "description": description,
                "tags": list(tags or []),
            },
        )

    # ----- lifecycle -----
    def flush(self) -> None:
        """Return once everything logged so far is stored (or safely journaled on disk)."""
        self._sender.drain()

    def _detach(self) -> None:
        """Flush and let go of this handle without ending the experiment (whose owner ends it);
        used by tallymark.integration.jobs when it logs into an experiment given by key."""
        self._close(end=False)

    def end(self) -> None:
        """Flush, stop capturing, and mark the experiment ended. Safe to call twice."""
        self._close(end=True)

    def _close(self, end: bool) -> None:
        """Stop monitoring and capture, flush, and let go of this handle; ``end`` also marks the
        experiment ended in the store. Safe to call twice."""
        if self._ended:
            return
        self._ended = True
        if self._monitor is not None:
            self._monitor.stop()
        if self._capture is not None:
            self._capture.stop()
        self._sender.close(end=end)
        _live.discard(self)
        self._finish()

    def _finish(self) -> None:
        summary = self._sender.summary()  # one line: what was not saved, where the rest is
        if summary:
            _warn(summary)
        if not self._journal.pending() and self._journal.folder.exists() and self._transport is not None:
            self._journal.remove()
        self._journal.release()  # what is left is the next run's to send
        if isinstance(self._transport, LocalTransport):
            self._transport.close()

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not self._ended:
            try:
                self.log_other("exit_status", f"failed: {exc_type.__name__}: {exc}"[:1000])
            except ExperimentEnded:
                pass
        self.end()

    def __repr__(self) -> str:
        return f"<Experiment {self.workspace}/{self.project_name}/{self._key}>"


class OfflineExperiment(Experiment):
    """An experiment with no server at all: everything goes into ``<offline_directory>/<key>.zip``,
    which ``tallymark upload FILE`` sends later."""

    def __init__(
        self,
        project_name: str | None = None,
        workspace: str | None = None,
        offline_directory: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if offline_directory is None:
            kwargs["settings"] = kwargs.get("settings") or ClientSettings.from_env()
        directory = Path(offline_directory or kwargs["settings"].offline_path).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(project_name, workspace, _offline_directory=directory, **kwargs)
        self.archive_path = directory / f"{self._key}.zip"

    def _finish(self) -> None:
        zip_folder(self._journal.folder, self.archive_path)
        self._journal.remove()
        _warn(
            f"offline experiment saved to {self.archive_path}; send it with "
            f"`tallymark upload {self.archive_path}`"
        )


def json_ready(data: Any) -> Any:
    """Plain JSON-able data with NaN/inf tagged the tallymark way."""
    import json

    return json.loads(jsonvalue.dumps(data))


def _confusion(y_true: Any, y_pred: Any) -> tuple[list[list[int]], list[Any]]:
    def labels_of(y: Any) -> list[Any]:
        y = jsonvalue.to_plain(y)
        out = []
        for v in y:
            if isinstance(v, list):  # one-hot or probabilities
                out.append(max(range(len(v)), key=v.__getitem__))
            else:
                out.append(v)
        return out

    t, p = labels_of(y_true), labels_of(y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries but y_predicted has {len(p)}")
    found = sorted(set(t) | set(p), key=lambda v: (str(type(v)), v))
    index = {v: i for i, v in enumerate(found)}
    m = [[0] * len(found) for _ in found]
    for a, b in zip(t, p, strict=True):
        m[index[a]][index[b]] += 1
    return m, found


def _table(data: Any) -> dict[str, Any]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        return {
            "columns": [str(c) for c in data.columns],
            "rows": jsonvalue.to_plain(data.astype(object).where(data.notna(), None).values.tolist()),
        }
    rows = jsonvalue.to_plain(list(data))
    if rows and isinstance(rows[0], dict):
        cols = list(dict.fromkeys(k for r in rows for k in r))
        return {"columns": cols, "rows": [[r.get(c) for c in cols] for r in rows]}
    if rows and isinstance(rows[0], list) and all(isinstance(c, str) for c in rows[0]):
        return {"columns": rows[0], "rows": rows[1:]}
    return {"columns": None, "rows": rows}


__all__ = ["Experiment", "ExperimentEnded", "OfflineExperiment", "TallymarkError", "current_user"]
