"""Reads the web UI needs beyond the REST API's: column names of a project, what an experiment
holds per kind (for tab badges), several experiments at once (compare) and asset previews."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from tallymark import jsonvalue
from tallymark.service import guard, metrics
from tallymark.service.assets import get_asset
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound
from tallymark.service.experiments import (
    EXPERIMENT_COLUMNS,
    _joined,
    experiment_dict,
    project_id,
    visible,
    visible_workspace,
)
from tallymark.service.store import Store
from tallymark.store.schema import assets, experiments, items, metric_summaries, others, params, tags


def project_columns(store: Store, caller: Caller, workspace: str, project: str) -> dict[str, list[str]]:
    """Every parameter, metric and "other" name used in a project, sorted (the column picker).

    One ``DISTINCT`` per table over the project's experiments: ~100–300 ms for 10 k experiments with
    32 names each on SQLite, which is why the table page asks for it only when the picker opens.
    """
    if not visible(caller, workspace):
        raise NotFound(f"no project {workspace}/{project}")
    guard.allow(caller, "experiment.query", workspace)
    with store.db.read() as conn:
        pid = project_id(conn, workspace, project, create=False)
        if pid is None:
            raise NotFound(f"no project {workspace}/{project}")
        ids = select(experiments.c.id).where(experiments.c.project_id == pid).scalar_subquery()
        out: dict[str, list[str]] = {}
        for label, table in (("params", params), ("metrics", metric_summaries), ("others", others)):
            names = conn.execute(
                select(table.c.name).where(table.c.experiment_id.in_(ids)).distinct().order_by(table.c.name)
            ).scalars()
            out[label] = list(names)
    return out


def experiment_counts(store: Store, caller: Caller, key: str) -> dict[str, int]:
    """How many items of each kind, assets, metrics and system metrics an experiment has."""
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        row = conn.execute(select(experiments.c.id).where(experiments.c.key == key)).first()
        if row is None:
            raise NotFound(f"no experiment with key {key!r}")
        eid = row.id
        counts = {
            kind: n
            for kind, n in conn.execute(
                select(items.c.kind, func.count()).where(items.c.experiment_id == eid).group_by(items.c.kind)
            )
        }
        counts["assets"] = conn.execute(
            select(func.count()).select_from(assets).where(assets.c.experiment_id == eid)
        ).scalar_one()
        names = list(
            conn.execute(
                select(metric_summaries.c.name).where(metric_summaries.c.experiment_id == eid)
            ).scalars()
        )
        counts["sys_metrics"] = sum(1 for n in names if n.startswith("sys."))
        counts["metrics"] = len(names) - counts["sys_metrics"]
        counts["params"] = conn.execute(
            select(func.count()).select_from(params).where(params.c.experiment_id == eid)
        ).scalar_one()
    return counts


def experiments_by_keys(store: Store, caller: Caller, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Experiments in the order of ``keys``, each with ``params``, ``metrics`` (summaries by name),
    ``others`` and ``tags``: everything the compare page shows in tables, in five queries."""
    if not keys:
        return []
    for key in dict.fromkeys(keys):
        visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        rows = conn.execute(
            select(*EXPERIMENT_COLUMNS).select_from(_joined()).where(experiments.c.key.in_(list(keys)))
        ).all()
        by_key = {r.key: r for r in rows}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise NotFound(f"no experiment with key {missing[0]!r}")
        ids = {by_key[k].id: k for k in keys}
        out = {k: experiment_dict(by_key[k], store.settings) for k in keys}
        for o in out.values():
            o.update(params={}, metrics={}, others={}, tags=[])
        for p in conn.execute(
            select(params.c.experiment_id, params.c.name, params.c.value_json).where(
                params.c.experiment_id.in_(ids)
            )
        ):
            out[ids[p.experiment_id]]["params"][p.name] = jsonvalue.loads(p.value_json)
        for oth in conn.execute(
            select(others.c.experiment_id, others.c.name, others.c.value_json).where(
                others.c.experiment_id.in_(ids)
            )
        ):
            out[ids[oth.experiment_id]]["others"][oth.name] = jsonvalue.loads(oth.value_json)
        for m in conn.execute(select(metric_summaries).where(metric_summaries.c.experiment_id.in_(ids))):
            out[ids[m.experiment_id]]["metrics"][m.name] = metrics.summary_dict(m)
        for t in conn.execute(
            select(tags.c.experiment_id, tags.c.tag)
            .where(tags.c.experiment_id.in_(ids))
            .order_by(tags.c.created_at, tags.c.tag)
        ):
            out[ids[t.experiment_id]]["tags"].append(t.tag)
    return [out[k] for k in keys]


def items_for_keys(
    store: Store, caller: Caller, keys: Sequence[str], kind: str
) -> dict[str, list[dict[str, Any]]]:
    """Items of one kind (e.g. every confusion matrix) for several experiments, by key (keys that
    do not exist, or that the caller may not read, have none)."""
    readable = [k for k in keys if _readable(store, caller, k)]
    with store.db.read() as conn:
        ids = {
            r.id: r.key
            for r in conn.execute(
                select(experiments.c.id, experiments.c.key).where(experiments.c.key.in_(readable))
            )
        }
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        if not ids:
            return out
        for r in conn.execute(
            select(items).where(items.c.experiment_id.in_(ids), items.c.kind == kind).order_by(items.c.id)
        ):
            out[ids[r.experiment_id]].append(
                {"id": r.id, "name": r.name, "step": r.step, "data": jsonvalue.loads(r.data_json)}
            )
    return out


def asset_preview(
    store: Store, caller: Caller, key: str, asset_id: int, limit: int = 64 * 1024
) -> tuple[dict[str, Any], bytes]:
    """An asset's record and up to ``limit`` of its first bytes (for a text preview)."""
    a = get_asset(store, caller, key, asset_id)
    chunks: list[bytes] = []
    got = 0
    for chunk in store.blobs.iter_bytes(a["sha256"]):
        chunks.append(chunk[: limit - got])
        got += len(chunks[-1])
        if got >= limit:
            break
    return a, b"".join(chunks)


def _readable(store: Store, caller: Caller, key: str) -> bool:
    try:
        visible_workspace(store, caller, key, "experiment.read")
    except NotFound:
        return False
    return True


def experiment_places(store: Store, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Where experiments live (workspace, project) and their names, by key: for links from the
    artifact and model pages to the experiments that produced, consumed or registered something."""
    from tallymark.store.schema import projects, workspaces

    wanted = [k for k in dict.fromkeys(keys) if k]
    if not wanted:
        return {}
    with store.db.read() as conn:
        rows = conn.execute(
            select(
                experiments.c.key,
                experiments.c.name,
                projects.c.name.label("project"),
                workspaces.c.name.label("workspace"),
            )
            .join(projects, projects.c.id == experiments.c.project_id)
            .join(workspaces, workspaces.c.id == projects.c.workspace_id)
            .where(experiments.c.key.in_(wanted))
        ).all()
    return {r.key: {"workspace": r.workspace, "project": r.project, "name": r.name} for r in rows}
