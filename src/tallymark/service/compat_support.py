"""Operations the wire-protocol adapters need that tallymark's own clients do not.

Comet's SDK (``tallymark.server.compat.comet``) logs in several small steps where tallymark's SDK sends
one request: an artifact version is created first and its files arrive one by one afterwards, a model's
files are uploaded one at a time, git metadata and the git patch arrive separately, an ended experiment
can be resumed, and an offline upload reports the original start and end times last. Each function
here is one such step, validated and applied in one transaction like every other service call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from tallymark import jsonvalue
from tallymark.service import guard, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Invalid, TooLarge
from tallymark.service.experiments import (
    close_open_versions,
    experiment_dict,
    experiment_row,
    require_running,
    visible_workspace,
)
from tallymark.service.files import check_files, insert_files, require_visible
from tallymark.service.models import FileIn, validated
from tallymark.service.store import Store, now_ms
from tallymark.service.values import validate_item
from tallymark.store.db import inserted_id
from tallymark.store.schema import (
    artifact_versions,
    experiment_models,
    experiments,
    files,
    items,
    model_versions,
    registered_models,
)

# Earliest and latest plausible experiment times (2000-01-01 and 2200-01-01, in ms).
_MIN_MS, _MAX_MS = 946_684_800_000, 7_258_118_400_000


def reopen_experiment(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    """Mark an ended experiment running again (Comet's ``ExistingExperiment`` resumes ended runs).

    What the earlier session made stays final: its artifact versions are closed, its registered
    models frozen; the resumed session can only add new things.
    """
    ws = visible_workspace(store, caller, key, "experiment.reopen")
    with guard.write(
        store, caller, "experiment.reopen", workspace=ws, object=("experiment", key), payload={"key": key}
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        w.changed = row.status != "running"
        if row.status != "running":
            close_open_versions(conn, row.id, now_ms())
            conn.execute(
                experiments.update()
                .where(experiments.c.id == row.id)
                .values(status="running", ended_at=None, import_until=None)
            )
        return experiment_dict(experiment_row(conn, key), store.settings)


def set_experiment_times(
    store: Store, caller: Caller, key: str, started_ms: int | None, ended_ms: int | None
) -> dict[str, Any]:
    """Record when an experiment really started and ended (an offline run uploaded later).

    The end time is kept only for an ended experiment; a running one stays open-ended.
    """
    for what, value in (("start", started_ms), ("end", ended_ms)):
        if value is not None and (isinstance(value, bool) or not _MIN_MS <= value <= _MAX_MS):
            raise Invalid(f"the {what} time {value!r} is not a time in milliseconds since 1970")
    if started_ms is not None and ended_ms is not None and ended_ms < started_ms:
        raise Invalid("the end time is before the start time")
    ws = visible_workspace(store, caller, key, "experiment.import")
    times = {"started_ms": started_ms, "ended_ms": ended_ms}
    with guard.write(
        store, caller, "experiment.import", workspace=ws, object=("experiment", key), payload=times
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        values: dict[str, Any] = {}
        if started_ms is not None:
            values["created_at"] = started_ms
        if ended_ms is not None and row.status == "ended":
            values["ended_at"] = ended_ms
        w.changed = bool(values)
        if values:
            conn.execute(experiments.update().where(experiments.c.id == row.id).values(**values))
        return experiment_dict(experiment_row(conn, key), store.settings)


def merge_item(
    store: Store,
    caller: Caller,
    key: str,
    kind: str,
    name: str,
    fields: dict[str, Any],
    session: str | None = None,
) -> dict[str, Any]:
    """Merge ``fields`` into the experiment's item ``(kind, name)`` (created when missing).

    For facts that arrive in parts (git metadata, then the patch; system details, then the package
    lists): the read, merge and write happen in one transaction, so parts arriving at the same time
    from different threads never overwrite each other.
    """
    if not isinstance(fields, dict):
        raise Invalid(f"{kind} {name!r}: the fields to merge must be an object")
    ws = visible_workspace(store, caller, key, "experiment.log")
    with guard.write(
        store, caller, "experiment.log", workspace=ws, object=("experiment", key), payload={kind: fields}
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        require_running(row, session, conn)
        old = conn.execute(
            select(items.c.data_json)
            .where(items.c.experiment_id == row.id, items.c.kind == kind, items.c.name == name)
            .order_by(items.c.id.desc())
            .limit(1)
        ).scalar()
        data = jsonvalue.loads(old) if old is not None else {}
        if not isinstance(data, dict):
            data = {}
        _deep_update(data, jsonvalue.decode_tagged(fields))
        norm = validate_item(kind, name, data)
        text = jsonvalue.dumps(norm)
        if len(text) > store.settings.max_item_bytes:
            raise TooLarge(
                f"{kind} {name!r} is {len(text):,} bytes; the limit is {store.settings.max_item_bytes:,}"
            )
        conn.execute(
            delete(items).where(items.c.experiment_id == row.id, items.c.kind == kind, items.c.name == name)
        )
        conn.execute(
            items.insert().values(
                experiment_id=row.id, kind=kind, name=name, step=None, data_json=text, created_at=now_ms()
            )
        )
        return {"kind": kind, "name": name, "data": norm}


def _deep_update(target: dict[str, Any], fields: dict[str, Any]) -> None:
    for k, v in fields.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            _deep_update(target[k], v)
        else:
            target[k] = v


def _new_rows(conn: Any, owner_kind: str, owner_id: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows not stored yet; the same path again with the same content is a retry and is skipped."""
    existing = {
        r.logical_path: (r.sha256, r.uri)
        for r in conn.execute(
            select(files.c.logical_path, files.c.sha256, files.c.uri).where(
                files.c.owner_kind == owner_kind, files.c.owner_id == owner_id
            )
        )
    }
    fresh = []
    for r in rows:
        old = existing.get(r["logical_path"])
        if old is None:
            fresh.append(r)
        elif old != (r["sha256"], r["uri"]):
            raise Conflict(f"{r['logical_path']!r} is already a different file of this {owner_kind}")
    return fresh


def append_artifact_files(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    version: str,
    data: list[FileIn] | list[dict[str, Any]],
    experiment_key: str,
    session: str | None = None,
) -> dict[str, Any]:
    """Add files to an artifact version while the experiment that produced it is still running.

    Comet creates a version first and uploads its files afterwards; only the producing experiment
    may add them, and only until it ends. A path already stored with the same content is a retry.
    """
    from tallymark.service.artifacts import _missing, own_version, version_dict

    lookups.allow_visible(caller, "artifact.log", workspace, _missing(workspace, name))
    specs = [validated(FileIn, f) for f in data]
    if not specs:
        raise Invalid("no files to add")
    rows = check_files(store, specs)
    require_visible(store, caller, rows)
    with guard.write(
        store,
        caller,
        "artifact.log",
        workspace=workspace,
        object=("artifact_version", f"{workspace}/{name}:{version}"),
        payload={"files": [[r["logical_path"], r["sha256"], r.get("uri")] for r in rows]},
    ) as w:
        w.action = "artifact_version.add_files"
        conn = w.conn
        vid, v, exp = own_version(conn, workspace, name, version, experiment_key)
        if v.closed_at is not None:
            raise Conflict(f"artifact {name!r} {version} is closed; its files are final (log a new version)")
        try:
            require_running(exp, session, conn)
        except Conflict:
            raise Conflict(
                f"artifact {name!r} {version} is complete: experiment {experiment_key} has ended"
            ) from None
        fresh = _new_rows(conn, "artifact_version", vid, rows)
        w.changed = bool(fresh)  # a retry of stored files changes nothing
        insert_files(conn, "artifact_version", vid, fresh)
        added = sum(r["size"] or 0 for r in fresh)
        if added:
            conn.execute(
                artifact_versions.update()
                .where(artifact_versions.c.id == vid)
                .values(size=artifact_versions.c.size + added)
            )
        return version_dict(conn, vid)


def add_model_files(
    store: Store,
    caller: Caller,
    key: str,
    model_name: str,
    data: list[FileIn] | list[dict[str, Any]],
    remote_uri: str | None = None,
    metadata: dict[str, Any] | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """Create the experiment's model ``model_name`` or add files to it (Comet uploads them one by one)."""
    from tallymark.service.models import ModelIn
    from tallymark.service.registry import _model_dict

    specs = [validated(FileIn, f) for f in data]
    spec = validated(
        ModelIn, {"name": model_name, "files": [], "remote_uri": remote_uri, "metadata": metadata}
    )
    if not specs and remote_uri is None:
        raise Invalid(f"model {model_name!r} needs files or a remote URI")
    ws = visible_workspace(store, caller, key, "model.log")
    rows = check_files(store, specs)
    require_visible(store, caller, rows)
    meta = None if spec.metadata is None else jsonvalue.dumps(spec.metadata)
    if meta is not None and len(meta) > store.settings.max_value_bytes:
        raise TooLarge("the model's metadata is larger than the value limit")
    payload = {
        "name": spec.name,
        "remote_uri": spec.remote_uri,
        "metadata": spec.metadata,
        "files": [[r["logical_path"], r["sha256"], r.get("uri")] for r in rows],
    }
    with guard.write(
        store, caller, "model.log", workspace=ws, object=("experiment", key), payload=payload
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        require_running(row, session, conn)
        existing = conn.execute(
            select(experiment_models).where(
                experiment_models.c.experiment_id == row.id, experiment_models.c.name == spec.name
            )
        ).first()
        if existing is not None:
            registered = conn.execute(
                select(model_versions.c.version, registered_models.c.name)
                .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
                .where(model_versions.c.experiment_model_id == existing.id)
            ).first()
            if registered is not None:
                raise Conflict(
                    f"model {spec.name!r} of experiment {key} is registered as {registered.name} "
                    f"{registered.version}; a registered version's files and metadata are final "
                    "(log the new files as a new model and register that)"
                )
        if existing is None:
            res = conn.execute(
                experiment_models.insert().values(
                    experiment_id=row.id,
                    name=spec.name,
                    remote_uri=spec.remote_uri,
                    metadata_json=meta,
                    created_at=now_ms(),
                )
            )
            mid = inserted_id(res)
        else:
            mid = existing.id
            update: dict[str, Any] = {}
            if spec.remote_uri is not None and existing.remote_uri not in (None, spec.remote_uri):
                raise Conflict(f"model {spec.name!r} already points to {existing.remote_uri}")
            if spec.remote_uri is not None and existing.remote_uri is None:
                update["remote_uri"] = spec.remote_uri
            if meta is not None and existing.metadata_json is None:
                update["metadata_json"] = meta
            if update:
                conn.execute(experiment_models.update().where(experiment_models.c.id == mid).values(**update))
        fresh = _new_rows(conn, "model", mid, rows)
        w.changed = existing is None or bool(update) or bool(fresh)  # else a retry
        if existing is not None:
            w.action = "model.add_files"
        insert_files(conn, "model", mid, fresh)
        return _model_dict(conn, mid)


def set_artifact_aliases(
    store: Store, caller: Caller, workspace: str, name: str, version: str, aliases: list[str]
) -> dict[str, Any]:
    """Make ``aliases`` exactly the aliases of one version (Comet's ``update_aliases``).

    An alias names one version of an artifact: one that named another version moves here, and an
    alias of this version that is not in the list is removed.
    """
    from tallymark.service.artifacts import _missing, _resolve, version_dict
    from tallymark.service.models import _alias
    from tallymark.store.schema import artifact_aliases

    lookups.allow_visible(caller, "artifact.alias", workspace, _missing(workspace, name))
    try:
        wanted = list(dict.fromkeys(_alias(a) for a in aliases))
    except (ValueError, TypeError) as exc:
        raise Invalid(str(exc)) from None
    with guard.write(
        store,
        caller,
        "artifact.alias",
        workspace=workspace,
        object=("artifact_version", f"{workspace}/{name}:{version}"),
        payload={"aliases": wanted},
    ) as w:
        conn = w.conn
        vid = _resolve(conn, workspace, name, version)
        aid = conn.execute(
            select(artifact_versions.c.artifact_id).where(artifact_versions.c.id == vid)
        ).scalar()
        conn.execute(
            delete(artifact_aliases).where(
                artifact_aliases.c.version_id == vid, artifact_aliases.c.alias.not_in(wanted)
            )
        )
        for alias in wanted:
            conn.execute(
                delete(artifact_aliases).where(
                    artifact_aliases.c.artifact_id == aid, artifact_aliases.c.alias == alias
                )
            )
            conn.execute(artifact_aliases.insert().values(artifact_id=aid, alias=alias, version_id=vid))
        return version_dict(conn, vid)
