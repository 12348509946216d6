"""Workspaces, projects and experiments: creation on first use, ending, renaming, lookups."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import Connection, Join, Row, func, select

from tallymark.service import guard, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, NotFound
from tallymark.service.models import ExperimentCreate, validated
from tallymark.service.store import Store, now_ms
from tallymark.store.db import upsert
from tallymark.store.schema import artifact_versions, experiments, projects, tags, workspaces


def _workspace_id(conn: Connection, name: str, create: bool) -> int | None:
    if create:
        upsert(conn, workspaces, [{"name": name, "created_at": now_ms()}], ["name"], None)
    return conn.execute(select(workspaces.c.id).where(workspaces.c.name == name)).scalar()


def project_id(conn: Connection, workspace: str, project: str, create: bool) -> int | None:
    ws = _workspace_id(conn, workspace, create)
    if ws is None:
        return None
    if create:
        row = {"workspace_id": ws, "name": project, "created_at": now_ms()}
        upsert(conn, projects, [row], ["workspace_id", "name"], None)
    return conn.execute(
        select(projects.c.id).where(projects.c.workspace_id == ws, projects.c.name == project)
    ).scalar()


EXPERIMENT_COLUMNS = (
    experiments.c.id,
    experiments.c.key,
    experiments.c.name,
    experiments.c.status,
    experiments.c.user,
    experiments.c.created_at,
    experiments.c.ended_at,
    experiments.c.import_token,
    experiments.c.import_until,
    projects.c.name.label("project"),
    workspaces.c.name.label("workspace"),
)


def _joined() -> Join:
    return experiments.join(projects, projects.c.id == experiments.c.project_id).join(
        workspaces, workspaces.c.id == projects.c.workspace_id
    )


def experiment_row(conn: Connection, key: str, for_update: bool = False) -> Row:
    stmt = select(*EXPERIMENT_COLUMNS).select_from(_joined()).where(experiments.c.key == key)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=experiments)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no experiment with key {key!r}")
    return row


def experiment_dict(row: Row, settings: Any = None) -> dict[str, Any]:
    out = {
        "key": row.key,
        "name": row.name,
        "status": row.status,
        "user": row.user,
        "created_at": row.created_at,
        "ended_at": row.ended_at,
        "workspace": row.workspace,
        "project": row.project,
    }
    if settings is not None:
        out["url"] = experiment_url(settings.public_url, row.workspace, row.project, row.key)
    return out


def visible_workspace(store: Store, caller: Caller, key: str, op: str) -> str:
    """The workspace of experiment ``key`` once ``caller`` may do ``op`` there.

    A key that does not exist and one in a workspace where the caller has no role answer the same
    NotFound (no existence leak); too weak a role is Forbidden (from :func:`guard.allow`).
    """
    missing = f"no experiment with key {key!r}"
    ws = lookups.experiment_workspace(store, key)
    if ws is None:
        raise NotFound(missing)
    lookups.allow_visible(caller, op, ws, missing)  # no role there: this same 404
    return ws


def visible(caller: Caller, workspace: str) -> bool:
    """Whether ``caller`` has a role in ``workspace`` (the local admin: everywhere)."""
    return caller.auth_method == "local" or caller.role(workspace) is not None


def experiment_url(base: str, workspace: str, project: str, key: str) -> str:
    from urllib.parse import quote

    return f"{base.rstrip('/')}/{quote(workspace, safe='')}/{quote(project, safe='')}/{key}"


def create_experiment(
    store: Store, caller: Caller, data: ExperimentCreate | dict[str, Any]
) -> dict[str, Any]:
    """Create the experiment (and its workspace and project on first use). Idempotent by key.

    With auth the experiment's user is the caller; the local admin (embedded home, ``--no-auth``)
    may name another user in the body, as a notebook on a shared machine does.
    """
    req = validated(ExperimentCreate, data)
    user = (req.user or caller.name) if caller.auth_method == "local" else caller.name
    payload = {"key": req.key, "workspace": req.workspace, "project": req.project, "name": req.name}
    with guard.write(
        store,
        caller,
        "experiment.create",
        workspace=req.workspace,
        object=("experiment", req.key),
        payload=payload,
    ) as w:
        conn = w.conn
        existing = conn.execute(
            select(*EXPERIMENT_COLUMNS).select_from(_joined()).where(experiments.c.key == req.key)
        ).first()
        if existing is not None:
            w.changed = False  # an idempotent replay of the same key: nothing happened
            if (existing.workspace, existing.project) != (req.workspace, req.project):
                raise Conflict(
                    f"experiment {req.key} already exists in {existing.workspace}/{existing.project}"
                )
            return experiment_dict(existing, store.settings) | {"created": False}
        pid = project_id(conn, req.workspace, req.project, create=True)
        now = now_ms()
        conn.execute(
            experiments.insert().values(
                key=req.key,
                project_id=pid,
                name=req.name,
                status="running",
                user=user,
                created_at=now,
            )
        )
        row = experiment_row(conn, req.key)
        if req.tags:
            upsert(
                conn,
                tags,
                [{"experiment_id": row.id, "tag": t, "created_at": now} for t in dict.fromkeys(req.tags)],
                ["experiment_id", "tag"],
                None,
            )
        return experiment_dict(row, store.settings) | {"created": True}


def get_experiment(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    visible_workspace(store, caller, key, "experiment.get")
    with store.db.read() as conn:
        return experiment_dict(experiment_row(conn, key), store.settings)


def require_running(row: Row, session: str | None = None, conn: Connection | None = None) -> None:
    """Refuse a write to an ended experiment, except the late uploads of its own import session.

    ``session`` is the token an offline-archive replay was given at its handshake (see
    :func:`start_import`). While that session's lease is open, the uploads it started before the
    archive's end arrived are still accepted; with ``conn`` (a write transaction) each accepted
    write extends the lease.
    """
    if row.status == "running":
        return
    now = now_ms()
    if session is not None and _lease_open(row, session, now):
        if conn is not None:
            conn.execute(
                experiments.update()
                .where(experiments.c.id == row.id)
                .values(import_until=now + IMPORT_GRACE_MS)
            )
        return
    raise Conflict(f"experiment {row.key} has ended; start a new experiment to log more")


def end_experiment(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    """End the experiment: nothing more is logged to it, and its artifact versions are closed."""
    ws = visible_workspace(store, caller, key, "experiment.end")
    with guard.write(
        store, caller, "experiment.end", workspace=ws, object=("experiment", key), payload={"key": key}
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        w.changed = row.status == "running"  # ending an ended experiment changes nothing
        if row.status == "running":
            now = now_ms()
            conn.execute(
                experiments.update()
                .where(experiments.c.id == row.id)
                .values(status="ended", ended_at=now, import_until=None)
            )
            close_open_versions(conn, row.id, now)
        return experiment_dict(experiment_row(conn, key), store.settings)


def close_open_versions(conn: Connection, experiment_id: int, now: int) -> None:
    """Close every artifact version the experiment was still adding files to: once it ends (or a
    later session reopens it), those versions' files and metadata are final."""
    conn.execute(
        artifact_versions.update()
        .where(
            artifact_versions.c.source_experiment_id == experiment_id,
            artifact_versions.c.closed_at.is_(None),
        )
        .values(closed_at=now)
    )


# --- import sessions ------------------------------------------------------------------------------
# A replayed offline archive (`comet upload`) sends the experiment's end while its file uploads are
# still in flight on other threads. The end is recorded when it arrives (and the archive's own end
# time replaces it), and the uploads that the same replay started stay acceptable for a while: the
# replay proves it is the same session with the token it got at its handshake, which nobody else
# ever sees (only its SHA-256 is stored). Every accepted late upload extends the lease; after
# IMPORT_GRACE_MS without one, the experiment is sealed like any other ended experiment.

IMPORT_GRACE_MS = 30 * 60 * 1000


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _lease_open(row: Row, session: str, now: int) -> bool:
    if row.import_token is None or row.import_until is None or now >= row.import_until:
        return False
    return hmac.compare_digest(row.import_token, _token_hash(session))


def start_import(store: Store, caller: Caller, key: str) -> str:
    """Start an import session for experiment ``key`` (running); returns its token, shown once."""
    token = secrets.token_hex(16)
    ws = visible_workspace(store, caller, key, "experiment.import")
    # The token is a secret: the audit payload says only that a session started.
    with guard.write(
        store, caller, "experiment.import", workspace=ws, object=("experiment", key), payload={"start": key}
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        require_running(row)
        conn.execute(
            experiments.update()
            .where(experiments.c.id == row.id)
            .values(import_token=_token_hash(token), import_until=None)
        )
    return token


def end_import(store: Store, caller: Caller, key: str, session: str | None) -> dict[str, Any]:
    """End the experiment as its import session asks; that session's late uploads stay acceptable.

    Without the session's token this is a plain :func:`end_experiment`.
    """
    ws = visible_workspace(store, caller, key, "experiment.import")
    with guard.write(
        store, caller, "experiment.import", workspace=ws, object=("experiment", key), payload={"end": key}
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        w.changed = row.status == "running"
        if row.status == "running":
            now = now_ms()
            ours = (
                session is not None
                and row.import_token is not None
                and hmac.compare_digest(row.import_token, _token_hash(session))
            )
            conn.execute(
                experiments.update()
                .where(experiments.c.id == row.id)
                .values(status="ended", ended_at=now, import_until=now + IMPORT_GRACE_MS if ours else None)
            )
            if not ours:  # a replay's versions stay open for its late uploads until its lease ends
                close_open_versions(conn, row.id, now)
        return experiment_dict(experiment_row(conn, key), store.settings)


def list_workspaces(store: Store, caller: Caller) -> list[dict[str, Any]]:
    """The workspaces the caller has a role in (every one for the local admin)."""
    guard.allow(caller, "workspace.list")
    with store.db.read() as conn:
        counts = (
            select(projects.c.workspace_id, func.count().label("n"))
            .group_by(projects.c.workspace_id)
            .subquery()
        )
        rows = conn.execute(
            select(workspaces.c.name, workspaces.c.created_at, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.workspace_id == workspaces.c.id)
            .order_by(workspaces.c.name)
        ).all()
    return [{"name": r[0], "created_at": r[1], "projects": r[2]} for r in rows if visible(caller, r[0])]


def list_projects(store: Store, caller: Caller, workspace: str) -> list[dict[str, Any]]:
    if not visible(caller, workspace):
        raise NotFound(f"no workspace named {workspace!r}")
    guard.allow(caller, "project.list", workspace)
    with store.db.read() as conn:
        ws = _workspace_id(conn, workspace, create=False)
        if ws is None:
            raise NotFound(f"no workspace named {workspace!r}")
        counts = (
            select(
                experiments.c.project_id,
                func.count().label("n"),
                func.max(experiments.c.created_at).label("last"),
            )
            .group_by(experiments.c.project_id)
            .subquery()
        )
        rows = conn.execute(
            select(projects.c.name, projects.c.created_at, func.coalesce(counts.c.n, 0), counts.c.last)
            .outerjoin(counts, counts.c.project_id == projects.c.id)
            .where(projects.c.workspace_id == ws)
            .order_by(projects.c.name)
        ).all()
    return [{"name": r[0], "created_at": r[1], "experiments": r[2], "last_created_at": r[3]} for r in rows]
