"""``tallymark upload KEY.zip`` for a Comet offline archive (``comet_ml.OfflineExperiment``).

A Comet archive holds ``experiment.json`` (key, workspace, project, tags, start and stop times) and
``messages.json`` (one JSON message a line: metrics, parameters, others, output, system details, git
metadata, file uploads, remote models, registrations) plus the files the upload messages name. This
module replays it through a tallymark transport (the embedded home or a server, like tallymark's own
archives), with the same translation as the online adapter, so the result equals what an online
Comet run logs.

Uploading an archive twice changes nothing: batch ids are derived from message ids, assets carry
Comet's asset ids as upload ids, and models or registry versions already recorded are left alone.
Nothing here needs the web server's packages.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tallymark import jsonvalue
from tallymark.server.compat.comet import translate as tr
from tallymark.storable import MAX_DEPTH

BATCH_MESSAGES = 5000
_SYSTEM_DETAILS_KEYS = {
    "os_type": "osType",
    "os_release": "osRelease",
    "python_exe": "executable",
    "python_version": "pythonVersion",
    "python_version_verbose": "pythonVersionVerbose",
}


def is_comet_archive(path: str | Path) -> bool:
    """True for a Comet offline archive (a zip with ``messages.json`` and a Comet ``experiment.json``)."""
    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    with zipfile.ZipFile(p) as zf:
        names = set(zf.namelist())
        if "messages.json" not in names or "experiment.json" not in names:
            return False
        try:
            meta = jsonvalue.parse(zf.read("experiment.json"), MAX_DEPTH, "experiment.json")
        except ValueError:
            return False
    return isinstance(meta, dict) and ("offline_id" in meta or "start_time" in meta)


def _messages(zf: zipfile.ZipFile) -> Iterator[tuple[int, str, dict[str, Any]]]:
    with zf.open("messages.json") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                msg = jsonvalue.parse(line, MAX_DEPTH, f"messages.json line {n}")
            except ValueError:
                raise ValueError(f"messages.json line {n} is not JSON") from None
            payload = msg.get("payload") or {}
            yield int(payload.get("message_id") or n), str(msg.get("type")), payload


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Replay:
    def __init__(self, zf: zipfile.ZipFile, transport: Any, key: str, tmp: Path, warn: Callable[[str], None]):
        self.zf, self.t, self.key, self.tmp, self.warn = zf, transport, key, tmp, warn
        self.counts: dict[str, int] = {}
        self.pending: list[tuple[int, str, dict[str, Any]]] = []
        self.environment: dict[str, Any] = {}
        self.packages: dict[str, Any] | None = None
        self.git: dict[str, Any] = {}
        self.models: dict[str, list[dict[str, Any]]] = {}
        self.model_meta: dict[str, tuple[str | None, Any]] = {}
        self.registrations: list[dict[str, Any]] = []
        self.skipped: dict[str, int] = {}

    # -- small helpers --
    def batch(self, batch_id: str, **fields: Any) -> None:
        body = {"batch_id": batch_id} | {k: v for k, v in fields.items() if v}
        if len(body) > 1:
            self.t.send_batch(self.key, body)

    def extract(self, name: Any) -> Path:
        target = self.tmp / "file"
        try:
            src = self.zf.open(str(name))
        except KeyError:
            raise ValueError(f"the archive has no file {name!r}, which messages.json names") from None
        with src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return target

    def skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    # -- messages that go into batches --
    def flush(self) -> None:
        if not self.pending:
            return
        first, last = self.pending[0][0], self.pending[-1][0]
        points, params, others, lines = [], {}, {}, []
        for _, kind, p in self.pending:
            if kind == "metric_msg":
                m = dict(p.get("metric") or {})
                m["timestamp"] = p.get("local_timestamp")
                points.append(m)
            elif kind == "parameter_msg":
                one = p.get("param") or p.get("params") or {}
                params[tr.param_name(one.get("paramName"))] = one.get("paramValue")
            elif kind == "log_other":
                others[str(p.get("key"))] = p.get("value")
            elif kind == "standard_output":
                lines.append(p)
        series, refused = tr.metric_series(points, self.counts)
        for s in series:
            self.counts[s["name"]] = self.counts.get(s["name"], 0) + len(s["steps"])
        for r in refused:
            self.warn(f"skipped {r}")
        name = others.pop("Name", None)
        self.batch(
            f"comet-archive-{first}-{last}",
            metrics=series,
            params=params,
            others=others,
            name=str(name) if name is not None else None,
            items=tr.stdout_items(lines),
        )
        self.pending = []

    # -- file uploads --
    def upload(self, mid: int, p: dict[str, Any]) -> None:
        q = {k: v for k, v in (p.get("additional_params") or {}).items() if v is not None}
        ctype = p.get("upload_type") or q.get("type") or "asset"
        file_name = str(q.get("fileName") or "file")
        step = tr.int_or_none(q.get("step"), "step")
        path = self.extract(p.get("file_path"))
        metadata = tr.metadata_in(p.get("metadata"))
        limit = 64 * 1024 * 1024
        if ctype in ("confusion-matrix", "curve", "source_code", "git-patch"):
            data = path.read_bytes()[:limit]
            if ctype == "git-patch":
                diff = tr.git_patch_text(data, limit)
                self.git.update({"diff": diff, "is_dirty": bool(diff.strip())})
                return
            if ctype == "confusion-matrix":
                item = tr.confusion_matrix_item(data, step)
            elif ctype == "curve":
                item = tr.curve_item(data, q.get("fileName"), step, str(q.get("overwrite")).lower() == "true")
            else:
                item = tr.code_item(data, q.get("fileName"))
            self.batch(f"comet-archive-file-{mid}", items=[item])
            return
        if ctype == "model-element":
            model = q.get("groupingName")
            if not model:
                self.skip("model files without a model name")
                return
            kept = self.tmp / f"model-{mid}"
            shutil.move(path, kept)
            self.models.setdefault(str(model), []).append(
                {"logical_path": file_name, "path": kept, "metadata": metadata}
            )
            return
        if ctype not in ("asset", "all"):
            metadata = dict(metadata or {}) | {tr.COMET_TYPE_KEY: ctype}
        if file_name == "auto-generated-in-the-backend":
            file_name = f"{ctype}-{str(q.get('assetId') or mid)[:12]}.txt"
        meta: dict[str, Any] = {"file_name": file_name, "step": step, "metadata": metadata}
        asset_id = str(q.get("assetId") or "")
        meta["upload_id"] = asset_id if asset_id.isalnum() and len(asset_id) <= 64 else f"comet-archive-{mid}"
        out = self.t.upload_asset(self.key, meta, path)
        if ctype in ("asset", "dataframe") and not out.get("duplicate") and path.stat().st_size <= limit:
            table = tr.table_item(path.read_bytes(), file_name)
            if table is not None:
                self.batch(f"comet-archive-table-{mid}", items=[table])

    # -- models and the registry, after every file is known --
    def log_models(self) -> None:
        from tallymark.sdk.transport import TallymarkError

        existing = {m["name"] for m in self.t.call("logged_models", key=self.key)}
        for name, files in self.models.items():
            if name in existing:
                continue
            manifest = []
            for f in files:
                sha = _sha256(f["path"])
                if self.t.call("blobs_missing", shas=[sha]):
                    self.t.call("put_blob", sha256=sha, path=f["path"])
                manifest.append({"logical_path": f["logical_path"], "sha256": sha, "metadata": f["metadata"]})
            try:
                self.t.call("log_model", key=self.key, body={"name": name, "files": manifest})
            except TallymarkError as exc:
                if exc.status != 409:
                    raise
        for name, (uri, meta) in self.model_meta.items():
            if name in existing or name in self.models:
                continue
            try:
                self.t.call(
                    "log_model", key=self.key, body={"name": name, "remote_uri": uri, "metadata": meta}
                )
            except TallymarkError as exc:
                if exc.status != 409:
                    raise

    def register(self, workspace: str) -> None:
        from tallymark.sdk.transport import TallymarkError

        for r in self.registrations:
            model = r.get("model_name")
            name = r.get("registry_name") or model
            ws = r.get("workspace") or workspace
            try:
                versions = self.t.call("get_model", workspace=ws, name=name)["versions"]
            except TallymarkError as exc:
                if exc.status != 404:
                    raise
                versions = []
            if any(v["experimentKey"] == self.key and v["experimentModel"] == model for v in versions):
                continue
            status = r.get("status")
            body = {
                "experiment_key": self.key,
                "experiment_model": model,
                "version": r.get("version") or None,
                "status": "development" if status in (None, "", "None") else tr.status_in(status),
                "description": r.get("description") or r.get("comment") or None,
                "tags": [str(t) for t in r.get("tags") or []],
            }
            self.t.call("register_model", workspace=ws, name=name, body=body)

    # -- everything --
    def run(self, on_entry: Callable[[int, int], None] | None) -> None:
        total = sum(1 for _ in _messages(self.zf))
        for i, (mid, kind, p) in enumerate(_messages(self.zf), 1):
            if kind in ("metric_msg", "parameter_msg", "log_other", "standard_output"):
                self.pending.append((mid, kind, p))
                if len(self.pending) >= BATCH_MESSAGES:
                    self.flush()
            elif kind == "file_upload":
                self.flush()
                try:
                    self.upload(mid, p)
                except tr.Refused as exc:
                    self.warn(f"skipped a {p.get('upload_type')} upload: {exc}")
            elif kind == "installed_packages":
                self.packages = tr.packages_item(p.get("installed_packages") or [])
            elif kind == "os_packages":
                self.environment["os_packages"] = [str(x) for x in p.get("os_packages") or []]
            elif kind == "system_details":
                d = {_SYSTEM_DETAILS_KEYS.get(k, k): v for k, v in p.items()}
                tr.deep_update(self.environment, tr.environment_fields(d))
            elif kind == "file_name":
                self.environment["file_path"] = p.get("file_name")
            elif kind == "gpu_static_info":
                self.environment["gpus"] = p.get("gpu_static_info")
            elif kind == "cloud_details":
                self.environment["cloud"] = {
                    "provider": p.get("provider"),
                    "metadata": p.get("cloud_metadata"),
                }
            elif kind == "git_metadata":
                self.git.update(tr.git_fields(p.get("git_metadata") or {}))
            elif kind == "remote_model":
                assets = p.get("remote_assets") or []
                if len(assets) == 1:
                    a = assets[0]
                    self.model_meta[str(p.get("model_name"))] = (
                        a.get("remoteUrl") or a.get("link"),
                        tr.metadata_in(a.get("metadata")),
                    )
                else:
                    self.skip("remote models of several files")
            elif kind == "register_model":
                self.registrations.append(p)
            else:
                self.skip(kind)
            if on_entry:
                on_entry(i, total)
        self.flush()
        items = []
        if self.environment:
            items.append({"kind": "environment", "name": "environment", "data": self.environment})
        if self.packages is not None:
            items.append({"kind": "packages", "name": "packages", "data": self.packages})
        if self.git:
            items.append({"kind": "git", "name": "git", "data": self.git})
        self.batch("comet-archive-environment", items=items)
        self.log_models()


def replay_comet_archive(
    path: str | Path,
    transport: Any,
    on_entry: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> str:
    """Import a Comet offline archive through ``transport``; returns the experiment key.

    Messages tallymark has no place for (HTML, 3D clouds, dependencies, model graphs…) are skipped
    and reported through ``warn`` (default: stderr).
    """
    say = warn or (lambda text: print(f"tallymark: {Path(path).name}: {text}", file=sys.stderr))
    with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory(prefix="tm-comet-") as tmp:
        meta = jsonvalue.parse(zf.read("experiment.json"), MAX_DEPTH, "experiment.json")
        key = meta.get("offline_id")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{path}: the archive has no experiment key (offline_id)")
        workspace = meta.get("workspace") or tr.DEFAULT_WORKSPACE
        project = meta.get("project_name") or tr.DEFAULT_PROJECT
        body: dict[str, Any] = {"key": key, "workspace": workspace, "project": project}
        if meta.get("tags"):
            body["tags"] = [str(t) for t in meta["tags"]]
        transport.create_experiment(body)  # idempotent; a key that lives in another project is a 409
        replay = _Replay(zf, transport, key, Path(tmp), say)
        replay.run(on_entry)
        transport.end_experiment(key)
        replay.register(workspace)
    for what, n in sorted(replay.skipped.items()):
        say(f"skipped {n} message(s) of a kind tallymark does not keep: {what}")
    return key
