"""Jobs in the store: one row per processing or training job, its output log, its lineage links.

A job is submitted (``job.create``) with its :class:`~tallymark.jobs.spec.JobSpec` as data; the
process that supervises it (the local supervisor, a Dask worker) reports status and timings
(``job.status``), appends its output in numbered chunks (``job.log``, a resent chunk is a no-op)
and records what it consumed and produced (``job.link``: lineage edges
``artifact_version -consumed-> job``, ``job -produced-> artifact_version``,
``job -trained-> experiment``). Anyone with a role in the job's workspace reads it (``job.get``,
``job.list``); a member asks it to stop (``job.stop``: ``stop_requested_at``, which the
supervisor polls, so stopping works from any process or machine).

The stored log is capped at ``Settings.job_log_max_bytes``: the first half of the cap (the head)
is kept, then the newest output (the tail) — older tail chunks are deleted as new ones come and
counted in ``log_dropped``; a reader sees a marker where bytes were left out. The job's full
output stays in its root (``logs/output.log``) on the machine that ran it.

Every write is audited on the object ``job`` ``WORKSPACE/NAME``; one log batch is one entry.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select

from tallymark import jsonvalue
from tallymark.service import guard, lineage, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.experiments import _workspace_id
from tallymark.service.store import Store, now_ms
from tallymark.store.db import inserted_id
from tallymark.store.schema import job_logs, jobs, workspaces

__all__ = [
    "create_job",
    "get_job",
    "job_logs_read",
    "link_job",
    "list_jobs",
    "log_job",
    "report_status",
    "stop_job",
]

# SageMaker's job name rule: 1-63 letters, digits and hyphens, starting with a letter or digit.
NAME_RE = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62}$")
CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FINAL = ("Completed", "Failed", "Stopped", "TimedOut")
STATUSES = ("InProgress", *FINAL)
MAX_CHUNK = 4 << 20  # bytes of one log batch (the runner ships ≤ 256 KiB)
MAX_RETRIES = 10
URI_SCHEMES = ("s3://", "artifact://", "file://")
STATUS_FIELDS = {
    "status": str,
    "secondary_status": str,
    "started_at": int,
    "ended_at": int,
    "exit_code": int,
    "failure_reason": str,
    "model_data": str,
    "attempt": int,
    "attempts": list,
    "host": str,
    "pid": int,
}
SPEC_TYPES: dict[str, type] = {
    "name": str,
    "kind": str,
    "workspace": str,
    "project": str,
    "script": str,
    "source_dir": str,
    "algorithm": str,
    "command": list,
    "arguments": list,
    "hyperparameters": dict,
    "inputs": list,
    "outputs": list,
    "output_path": str,
    "environment": dict,
    "backend": str,
    "resources": dict,
}
_TYPE_NAMES: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
RELATIONS = {"consumed": "artifact", "produced": "artifact", "trained": "experiment"}


def _missing(workspace: str, name: str) -> str:
    return f"no job {name!r} in workspace {workspace!r}"


def _obj(workspace: str, name: str) -> tuple[str, str]:
    return "job", f"{workspace}/{name}"


def marker(dropped: int) -> bytes:
    """What a reader sees where the stored log leaves bytes out."""
    return f"\n[... tallymark: {dropped:,} bytes of output left out here (log limit) ...]\n".encode()


# ---- validation --------------------------------------------------------------------------------


def validate_spec(workspace: str, spec: Any) -> dict[str, Any]:
    """The spec as stored, or :class:`Invalid` saying what is wrong with it (before any write)."""
    from tallymark.jobs.spec import JobSpec

    if not isinstance(spec, dict):
        raise Invalid("the job spec must be an object")
    for key, kind in SPEC_TYPES.items():
        value: Any = spec.get(key)
        if value is None:
            continue
        if not _is(value, kind):
            raise Invalid(f"the job spec's {key!r} must be {_TYPE_NAMES[kind]}")
        if kind is list and key in ("inputs", "outputs") and not all(isinstance(x, dict) for x in value):
            raise Invalid(f"each of the job spec's {key!r} is an object")
        if kind is list and key in ("command", "arguments") and not all(isinstance(x, str) for x in value):
            raise Invalid(f"the job spec's {key!r} is a list of strings")
        if key == "environment" and not all(isinstance(v, str) for v in value.values()):
            raise Invalid("the job spec's environment values are strings")
    try:
        js = JobSpec.from_dict(spec)
    except TypeError as exc:
        raise Invalid(f"the job spec has unknown or missing fields: {exc}") from None
    except Exception as exc:
        raise Invalid(f"the job spec is malformed: {exc}") from None
    if not isinstance(js.name, str) or not NAME_RE.match(js.name):
        raise Invalid(
            f"job name {js.name!r}: use 1-63 letters, digits and hyphens, starting with a letter or digit"
        )
    if js.workspace != workspace:
        raise Invalid(f"the spec names workspace {js.workspace!r}, the request {workspace!r}")
    if js.kind not in ("processing", "training"):
        raise Invalid(f"job kind {js.kind!r}: processing or training")
    if (js.script is None) == (js.algorithm is None):
        raise Invalid("a job runs either a script or a built-in algorithm: give exactly one")
    if js.algorithm is not None and js.algorithm != "xgboost":
        raise Invalid(f"unknown built-in algorithm {js.algorithm!r} (known: xgboost)")
    if js.algorithm is not None and js.kind != "training":
        raise Invalid("a built-in algorithm runs as a training job")
    if not isinstance(js.max_run, int) or isinstance(js.max_run, bool) or not 1 <= js.max_run <= 28 * 86400:
        raise Invalid(f"max_run {js.max_run!r}: whole seconds from 1 to 28 days")
    if not isinstance(js.retries, int) or isinstance(js.retries, bool) or not 0 <= js.retries <= MAX_RETRIES:
        raise Invalid(f"retries {js.retries!r}: 0 to {MAX_RETRIES}")
    if not isinstance(js.stop_grace, (int, float)) or not 0 <= js.stop_grace <= 3600:
        raise Invalid("stop_grace: 0 to 3600 seconds")
    if not isinstance(js.backend, str) or not (js.backend == "local" or js.backend.startswith("dask")):
        raise Invalid(f"backend {js.backend!r}: 'local', 'dask' or 'dask://HOST:PORT'")
    for k, v in js.hyperparameters.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise Invalid(f"hyperparameter {k!r}: names and values are strings (as SageMaker passes them)")
    seen: set[str] = set()
    for c in js.inputs:
        what = "channel" if js.kind == "training" else "input"
        if not isinstance(c.name, str) or not CHANNEL_RE.match(c.name):
            raise Invalid(f"{what} name {c.name!r}: letters, digits, '.', '_' and '-', up to 64")
        if c.name in seen:
            raise Invalid(f"{what} {c.name!r} is given twice")
        seen.add(c.name)
        _check_uri(f"{what} {c.name!r}", c.uri)
        if c.destination is not None:
            _check_dest(f"{what} {c.name!r}", c.destination)
        if js.kind == "processing" and c.destination is None:
            raise Invalid(f"processing input {c.name!r} needs a destination path")
    out_seen: set[str] = set()
    for o in js.outputs:
        if not isinstance(o.name, str) or not CHANNEL_RE.match(o.name):
            raise Invalid(f"output name {o.name!r}: letters, digits, '.', '_' and '-', up to 64")
        if o.name in out_seen:
            raise Invalid(f"output {o.name!r} is given twice")
        out_seen.add(o.name)
        _check_dest(f"output {o.name!r}", o.source)
        _check_uri(f"output {o.name!r}", o.destination, output=True)
    out = js.to_dict()
    if len(jsonvalue.dumps(out)) > 1 << 20:
        raise Invalid("the job spec is larger than 1 MiB")
    return out


def _is(value: Any, kind: type) -> bool:
    # in-process callers hand the spec's tuples over as they are; JSON brings lists
    return isinstance(value, (list, tuple)) if kind is list else isinstance(value, kind)


def _check_uri(what: str, uri: Any, output: bool = False) -> None:
    if not isinstance(uri, str) or not uri or len(uri) > 4000 or "\x00" in uri:
        raise Invalid(f"{what}: the URI must be a non-empty string")
    if "://" in uri and not uri.startswith(URI_SCHEMES):
        raise Invalid(f"{what}: {uri!r}: a local path, s3://BUCKET/KEY or artifact://WS/NAME[:VERSION]")
    if uri.startswith("artifact://"):
        # A malformed artifact URI or sub-path ("..", absolute, backslashes) is refused here, as a
        # 4xx before any job exists, rather than as a Failed job after it was scheduled.
        from tallymark.jobs.uris import SUBPATH_OUTPUT, parse_artifact

        try:
            ref = parse_artifact(uri)
        except ValueError as exc:
            raise Invalid(f"{what}: {exc}") from None
        if output and ref.subpath is not None:
            raise Invalid(f"{what}: {uri!r}: {SUBPATH_OUTPUT}")


def _check_dest(what: str, path: Any) -> None:
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 1000:
        raise Invalid(f"{what}: {path!r} must be an absolute path (e.g. /opt/ml/processing/input)")
    parts = path.split("/")
    if ".." in parts or "\x00" in path:
        raise Invalid(f"{what}: {path!r} may not contain '..'")
    if path.rstrip("/") in ("", "/opt", "/opt/ml", "/proc", "/sys", "/dev"):
        raise Invalid(f"{what}: {path!r} cannot be a job's path")


# ---- reads ---------------------------------------------------------------------------------------


def _row(conn: Connection, workspace: str, name: str) -> Row:
    r = conn.execute(
        select(jobs)
        .join(workspaces, workspaces.c.id == jobs.c.workspace_id)
        .where(jobs.c.name == name, workspaces.c.name == workspace)
    ).first()
    if r is None:
        raise NotFound(_missing(workspace, name))
    return r


def job_dict(conn: Connection, r: Row, workspace: str, full: bool = True) -> dict[str, Any]:
    from tallymark.service.experiments import experiments

    exp_key = None
    if r.experiment_id is not None:
        exp_key = conn.execute(select(experiments.c.key).where(experiments.c.id == r.experiment_id)).scalar()
    out: dict[str, Any] = {
        "name": r.name,
        "workspace": workspace,
        "kind": r.kind,
        "status": r.status,
        "secondary_status": r.secondary_status,
        "backend": r.backend,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "exit_code": r.exit_code,
        "failure_reason": r.failure_reason,
        "model_data": r.model_data,
        "attempt": r.attempt,
        "max_attempts": r.max_attempts,
        "stop_requested_at": r.stop_requested_at,
        "host": r.host,
        "pid": r.pid,
        "log_bytes": r.log_bytes,
        "log_dropped": r.log_dropped,
        "experiment_key": exp_key,
    }
    if full:
        spec = jsonvalue.loads(r.spec_json)
        out["spec"] = spec
        out["project"] = spec.get("project")
        out["resources"] = jsonvalue.loads(r.resources_json) if r.resources_json else {}
        out["attempts"] = jsonvalue.loads(r.attempts_json) if r.attempts_json else []
        nxt = conn.execute(select(func.max(job_logs.c.seq)).where(job_logs.c.job_id == r.id)).scalar()
        out["log_next_seq"] = 0 if nxt is None else int(nxt) + 1
        out["links"] = [
            {"relation": n["relation"], "ref": n["ref"], "label": n["label"]}
            for n in lineage.neighbours(conn, "job", r.id, "both")
        ]
    return out


def get_job(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    """One job: its spec, status, timings, attempts, log size and lineage links."""
    lookups.allow_visible(caller, "job.get", workspace, _missing(workspace, name))
    with store.db.read() as conn:
        return job_dict(conn, _row(conn, workspace, name), workspace)


def list_jobs(
    store: Store, caller: Caller, workspace: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The workspace's jobs, newest first (``status`` filters; at most ``limit``, 1-1000)."""
    lookups.allow_visible(caller, "job.list", workspace, f"no workspace {workspace!r}")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status {status!r}: one of {', '.join(STATUSES)}")
    if not 1 <= int(limit) <= 1000:
        raise Invalid("limit: 1 to 1000")
    stmt = (
        select(jobs)
        .join(workspaces, workspaces.c.id == jobs.c.workspace_id)
        .where(workspaces.c.name == workspace)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(int(limit))
    )
    if status is not None:
        stmt = stmt.where(jobs.c.status == status)
    with store.db.read() as conn:
        return [job_dict(conn, r, workspace, full=False) for r in conn.execute(stmt).all()]


def job_logs_read(
    store: Store, caller: Caller, workspace: str, name: str, after: int = -1, limit_bytes: int = 8 << 20
) -> dict[str, Any]:
    """The job's stored output after chunk ``after`` (-1: from the start), up to about
    ``limit_bytes``: ``{"data": bytes, "next": last seq read, "status", "dropped", "done"}``;
    ``done`` once the job has ended and nothing more is stored. A marker stands where chunks were
    left out (the log limit)."""
    lookups.allow_visible(caller, "job.get", workspace, _missing(workspace, name))
    with store.db.read() as conn:
        r = _row(conn, workspace, name)
        rows = conn.execute(
            select(job_logs.c.seq, job_logs.c.data)
            .where(job_logs.c.job_id == r.id, job_logs.c.seq > int(after))
            .order_by(job_logs.c.seq)
        ).all()
        prev = None
        if rows and after >= 0:
            prev = int(after)
        elif rows:
            prev = -1
        parts: list[bytes] = []
        size = 0
        last = int(after)
        more = False
        for seq, data in rows:
            if size >= limit_bytes:
                more = True
                break
            if prev is not None and seq != prev + 1 and r.log_dropped:
                parts.append(marker(r.log_dropped))
            parts.append(bytes(data))
            size += len(data)
            prev = last = seq
        final = r.status in FINAL
    return {
        "data": b"".join(parts),
        "next": last,
        "status": r.status,
        "dropped": r.log_dropped,
        "done": final and not more,
    }


# ---- writes --------------------------------------------------------------------------------------


def create_job(store: Store, caller: Caller, workspace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Record a submitted job (status ``InProgress``, ``Starting``); a name in use is a 409."""
    from tallymark.service.models import _scope_name

    try:
        _scope_name(workspace)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    lookups.allow_visible(caller, "job.create", workspace, f"no workspace {workspace!r}")
    if not isinstance(body, dict) or "spec" not in body:
        raise Invalid('the body is {"spec": {...the job spec...}}')
    spec = validate_spec(workspace, body["spec"])
    now = now_ms()
    with guard.write(
        store,
        caller,
        "job.create",
        workspace=workspace,
        object=_obj(workspace, spec["name"]),
        payload={"kind": spec["kind"], "backend": spec["backend"], "spec": spec},
    ) as w:
        conn = w.conn
        if conn.execute(select(jobs.c.id).where(jobs.c.name == spec["name"])).first() is not None:
            raise Conflict(f"a job named {spec['name']!r} exists already; job names are unique")
        ws = _workspace_id(conn, workspace, create=True)
        res = conn.execute(
            jobs.insert().values(
                name=spec["name"],
                workspace_id=ws,
                kind=spec["kind"],
                status="InProgress",
                secondary_status="Starting",
                backend=spec["backend"],
                spec_json=jsonvalue.dumps(spec),
                resources_json=jsonvalue.dumps(spec.get("resources") or {}),
                created_by=caller.name,
                created_at=now,
                attempt=1,
                max_attempts=spec["retries"] + 1,
                log_bytes=0,
                log_dropped=0,
            )
        )
        out = job_dict(conn, conn.execute(select(jobs).where(jobs.c.id == inserted_id(res))).one(), workspace)
    return out


def report_status(
    store: Store, caller: Caller, workspace: str, name: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """A runner's report: status, secondary status, timings, exit code, attempts (``job.status``).

    A job that has ended keeps its final status (a 409 for a second, different one); the answer
    carries ``stop_requested`` so a runner learns of a stop with its next report."""
    lookups.allow_visible(caller, "job.status", workspace, _missing(workspace, name))
    if not isinstance(fields, dict) or not fields:
        raise Invalid("a status report names at least one field")
    values: dict[str, Any] = {}
    for k, v in fields.items():
        kind = STATUS_FIELDS.get(k)
        if kind is None:
            raise Invalid(f"unknown status field {k!r} (known: {', '.join(STATUS_FIELDS)})")
        if v is None:
            values[k] = None
            continue
        if not isinstance(v, kind) or isinstance(v, bool):
            raise Invalid(f"status field {k!r}: expected {kind.__name__}")
        values[k] = v
    if "status" in values and values["status"] not in STATUSES:
        raise Invalid(f"status {values['status']!r}: one of {', '.join(STATUSES)}")
    if isinstance(values.get("failure_reason"), str):
        values["failure_reason"] = values["failure_reason"][:4000]
    if isinstance(values.get("secondary_status"), str):
        values["secondary_status"] = values["secondary_status"][:40]
    if "attempts" in values:
        values["attempts_json"] = jsonvalue.dumps(values.pop("attempts"))
    with guard.write(
        store,
        caller,
        "job.status",
        workspace=workspace,
        object=_obj(workspace, name),
        payload={k: v for k, v in fields.items() if k != "attempts"},
    ) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        if r.status in FINAL and "status" in values and values["status"] != r.status:
            raise Conflict(
                f"job {name!r} has ended ({r.status}); its status cannot change to {values['status']}"
            )
        if r.status in FINAL and "status" not in values:
            values.pop("secondary_status", None)  # a late progress report does not reopen it
        changes = {k: v for k, v in values.items() if getattr(r, k, object()) != v}
        w.changed = bool(changes)
        if changes:
            conn.execute(jobs.update().where(jobs.c.id == r.id).values(**changes))
        out = job_dict(conn, conn.execute(select(jobs).where(jobs.c.id == r.id)).one(), workspace, full=False)
    out["stop_requested"] = out["stop_requested_at"] is not None
    return out


def log_job(
    store: Store, caller: Caller, workspace: str, name: str, seq: int, attempt: int, data: bytes
) -> dict[str, Any]:
    """Append chunk ``seq`` of the job's output (``job.log``); a chunk already stored is a no-op.

    Beyond ``job_log_max_bytes`` the oldest chunks after the head are deleted and counted."""
    lookups.allow_visible(caller, "job.log", workspace, _missing(workspace, name))
    if not isinstance(seq, int) or not 0 <= seq < 2**31:
        raise Invalid("seq: 0 to 2**31 - 1")
    if not isinstance(attempt, int) or not 1 <= attempt <= MAX_RETRIES + 1:
        raise Invalid(f"attempt: 1 to {MAX_RETRIES + 1}")
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_CHUNK:
        raise Invalid(f"a log chunk is 0 to {MAX_CHUNK} bytes")
    cap = store.settings.job_log_max_bytes
    with guard.write(
        store,
        caller,
        "job.log",
        workspace=workspace,
        object=_obj(workspace, name),
        payload={"seq": seq, "attempt": attempt, "bytes": len(data)},
    ) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        seen = conn.execute(
            select(job_logs.c.id).where(job_logs.c.job_id == r.id, job_logs.c.seq == seq)
        ).first()
        if seen is not None:
            w.changed = False
            return {"seq": seq, "stored": False}
        conn.execute(
            job_logs.insert().values(job_id=r.id, seq=seq, attempt=attempt, at=now_ms(), data=bytes(data))
        )
        total = r.log_bytes + len(data)
        dropped = r.log_dropped
        if total - dropped > cap:
            dropped += _trim(conn, r.id, cap, total - dropped)
        conn.execute(jobs.update().where(jobs.c.id == r.id).values(log_bytes=total, log_dropped=dropped))
    return {"seq": seq, "stored": True, "log_bytes": total, "log_dropped": dropped}


def _trim(conn: Connection, job_id: int, cap: int, stored: int) -> int:
    """Delete the oldest chunks after the head until the stored log fits ``cap``; bytes deleted."""
    sizes = conn.execute(
        select(job_logs.c.seq, func.length(job_logs.c.data))
        .where(job_logs.c.job_id == job_id)
        .order_by(job_logs.c.seq)
    ).all()
    head, i = 0, 0
    while i < len(sizes) and head < cap // 2:  # the head: the first half of the cap, kept for good
        head += sizes[i][1]
        i += 1
    gone: list[int] = []
    freed = 0
    for seq, size in sizes[i:-1]:  # never the newest chunk
        if stored - freed <= cap:
            break
        gone.append(seq)
        freed += size
    if gone:
        conn.execute(delete(job_logs).where(job_logs.c.job_id == job_id, job_logs.c.seq.in_(gone)))
    return freed


def stop_job(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    """Ask a running job to stop (``job.stop``); its supervisor sees it within a second. A job that
    has ended, or was asked already, changes nothing."""
    lookups.allow_visible(caller, "job.stop", workspace, _missing(workspace, name))
    with guard.write(store, caller, "job.stop", workspace=workspace, object=_obj(workspace, name)) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        w.changed = r.status not in FINAL and r.stop_requested_at is None
        if w.changed:
            conn.execute(jobs.update().where(jobs.c.id == r.id).values(stop_requested_at=now_ms()))
        out = job_dict(conn, conn.execute(select(jobs).where(jobs.c.id == r.id)).one(), workspace, full=False)
    return out


def link_job(store: Store, caller: Caller, workspace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Record lineage (``job.link``): ``{"relation": "consumed"|"produced",
    "ref": "artifact:WS/NAME:VERSION"}`` or ``{"relation": "trained", "ref": "experiment:KEY"}``
    (an experiment that logged this job)."""
    lookups.allow_visible(caller, "job.link", workspace, _missing(workspace, name))
    if not isinstance(body, dict):
        raise Invalid('the body is {"relation": ..., "ref": ...}')
    relation, ref = body.get("relation"), body.get("ref")
    if relation not in RELATIONS:
        raise Invalid(f"relation {relation!r}: one of {', '.join(RELATIONS)}")
    if not isinstance(ref, str) or not ref.startswith(RELATIONS[relation] + ":"):
        raise Invalid(f"a {relation!r} link names {RELATIONS[relation]}:…, not {ref!r}")
    lineage.check_visible(store, caller, ref)  # the other node: visible to the caller, else its 404
    with guard.write(
        store, caller, "job.link", workspace=workspace, object=_obj(workspace, name), payload=body
    ) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        kind, other = lineage.resolve(conn, ref)
        src, dst = (
            ((kind, other), ("job", r.id)) if relation == "consumed" else (("job", r.id), (kind, other))
        )
        w.changed = not lineage.has_edge(conn, src[0], src[1], dst[0], dst[1], relation)
        if w.changed:
            lineage.add_edge(conn, src[0], src[1], dst[0], dst[1], relation)
            if relation == "trained" and r.experiment_id is None:
                conn.execute(jobs.update().where(jobs.c.id == r.id).values(experiment_id=other))
        node = lineage.describe(conn, kind, other)
    return {"relation": relation, "ref": node["ref"], "node": node}
