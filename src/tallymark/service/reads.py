"""The read side: summaries, histories, items and the experiment list with the query language."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select

from tallymark import jsonvalue
from tallymark.service import guard, metrics
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid, NotFound
from tallymark.service.experiments import (
    EXPERIMENT_COLUMNS,
    _joined,
    experiment_dict,
    experiment_row,
    project_id,
    visible,
    visible_workspace,
)
from tallymark.service.store import Store
from tallymark.store.schema import experiments, items, metric_summaries, others, params, tags


def parameters_summary(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        rows = conn.execute(select(params).where(params.c.experiment_id == eid).order_by(params.c.name)).all()
    return [
        {
            "name": r.name,
            "valueCurrent": jsonvalue.loads(r.value_json),
            "valueMin": None if r.min_json is None else jsonvalue.loads(r.min_json),
            "valueMax": None if r.max_json is None else jsonvalue.loads(r.max_json),
            "timestampCurrent": r.updated_at,
        }
        for r in rows
    ]


def others_summary(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        rows = conn.execute(select(others).where(others.c.experiment_id == eid).order_by(others.c.name)).all()
    return [
        {"name": r.name, "valueCurrent": jsonvalue.loads(r.value_json), "timestampCurrent": r.updated_at}
        for r in rows
    ]


def get_tags(store: Store, caller: Caller, key: str) -> list[str]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        return list(
            conn.execute(
                select(tags.c.tag).where(tags.c.experiment_id == eid).order_by(tags.c.created_at, tags.c.tag)
            ).scalars()
        )


def metrics_summary(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        rows = conn.execute(
            select(metric_summaries)
            .where(metric_summaries.c.experiment_id == eid)
            .order_by(metric_summaries.c.name)
        ).all()
    return [metrics.summary_dict(r) for r in rows]


def metric_history(
    store: Store, caller: Caller, key: str, name: str, points: int | None = None
) -> dict[str, Any]:
    """One metric's points by step; with ``points``, LTTB-downsampled to at most that many."""
    visible_workspace(store, caller, key, "metric.read")
    if points is not None and not 3 <= points <= 100_000:
        raise Invalid("points must be between 3 and 100000")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        s = metrics.read_series(conn, eid, name)
    total = len(s)
    if points is not None:
        s, total = metrics.downsample(s, points)
    return metrics.series_json(s, total)


def metric_series_many(
    store: Store, caller: Caller, keys: list[str], name: str, points: int | None = None
) -> dict[str, tuple[Any, int]]:
    """One metric of many experiments as typed series: ``{key: (Series, total points)}``."""
    from tallymark.service.models import KEY_RE

    if not 1 <= len(keys) <= 1000:
        raise Invalid("give between 1 and 1000 experiment keys")
    bad = [k for k in keys if not KEY_RE.match(k)]
    if bad:
        raise Invalid(f"{bad[0]!r} is not an experiment key")
    if points is not None and not 3 <= points <= 100_000:
        raise Invalid("points must be between 3 and 100000")
    for key in dict.fromkeys(keys):
        visible_workspace(store, caller, key, "metric.read")
    with store.db.read() as conn:
        ids = dict(
            conn.execute(select(experiments.c.key, experiments.c.id).where(experiments.c.key.in_(keys))).all()
        )
        missing = [k for k in keys if k not in ids]
        if missing:
            raise NotFound(f"no experiment with key {missing[0]!r}")
        series = metrics.read_many(conn, list(ids.values()), name)
    out: dict[str, tuple[Any, int]] = {}
    for key in keys:
        s = series.get(ids[key])
        if s is None:
            continue
        out[key] = metrics.downsample(s, points) if points is not None else (s, len(s))
    return out


def metric_histories(
    store: Store, caller: Caller, keys: list[str], name: str, points: int | None = None
) -> dict[str, Any]:
    """One metric for many experiments at once (compare views, notebooks): ``{key: series}``."""
    many = metric_series_many(store, caller, keys, name, points)
    return {"name": name, "series": {k: metrics.series_json(s, total) for k, (s, total) in many.items()}}


def metric_names(store: Store, caller: Caller, key: str) -> list[str]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        return list(
            conn.execute(
                select(metric_summaries.c.name)
                .where(metric_summaries.c.experiment_id == eid)
                .order_by(metric_summaries.c.name)
            ).scalars()
        )


def get_items(
    store: Store, caller: Caller, key: str, kind: str, name: str | None = None
) -> list[dict[str, Any]]:
    visible_workspace(store, caller, key, "experiment.read")
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        stmt = select(items).where(items.c.experiment_id == eid, items.c.kind == kind)
        if name is not None:
            stmt = stmt.where(items.c.name == name)
        rows = conn.execute(stmt.order_by(items.c.id)).all()
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "name": r.name,
            "step": r.step,
            "createdAt": r.created_at,
            "data": jsonvalue.loads(r.data_json),
        }
        for r in rows
    ]


def get_stdout(store: Store, caller: Caller, key: str) -> str:
    return "".join(i["data"]["text"] for i in get_items(store, caller, key, "stdout"))


SORTABLE = ("name", "created_at", "status", "user", "key")


def query_experiments(
    store: Store,
    caller: Caller,
    workspace: str,
    project: str | None = None,
    q: str | None = None,
    sort: str = "-created_at",
    page: int = 1,
    per_page: int = 50,
    with_values: bool = True,
) -> dict[str, Any]:
    """A page of experiments matching the query language ``q`` (see docs/query-language.md)."""
    from tallymark.query import QueryError, parse
    from tallymark.store.query_sql import compile_where, sort_expression

    if not visible(caller, workspace):  # like a workspace that does not exist
        raise NotFound(
            f"no project {workspace}/{project}"
            if project is not None
            else f"no workspace named {workspace!r}"
        )
    guard.allow(caller, "experiment.query", workspace)
    if page < 1 or not 1 <= per_page <= 1000:
        raise Invalid("page must be ≥ 1 and per_page between 1 and 1000")
    try:
        node = parse(q or "")
    except QueryError as exc:
        raise Invalid(str(exc), {"column": exc.column, "query": q, "message": exc.message}) from None
    descending = sort.startswith("-")
    field = sort.lstrip("-+")
    try:
        order = sort_expression(field, descending)
    except (QueryError, ValueError) as exc:
        raise Invalid(f"cannot sort by {field!r}: {exc}") from None
    with store.db.read() as conn:
        stmt = select(*EXPERIMENT_COLUMNS).select_from(_joined())
        if project is None:
            from tallymark.store.schema import workspaces

            stmt = stmt.where(workspaces.c.name == workspace)
        else:
            pid = project_id(conn, workspace, project, create=False)
            if pid is None:
                raise NotFound(f"no project {workspace}/{project}")
            stmt = stmt.where(experiments.c.project_id == pid)
        stmt = stmt.where(compile_where(node))
        total = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = conn.execute(
            stmt.order_by(*order, experiments.c.id).limit(per_page).offset((page - 1) * per_page)
        ).all()
        out = [experiment_dict(r, store.settings) for r in rows]
        if with_values and rows:
            _attach_values(conn, rows, out)
    return {"experiments": out, "total": total, "page": page, "per_page": per_page}


def _attach_values(conn: Connection, rows: Sequence[Row], out: list[dict[str, Any]]) -> None:
    ids = {r.id: o for r, o in zip(rows, out, strict=True)}
    for o in out:
        o["params"], o["metrics"], o["tags"] = {}, {}, []
    for r in conn.execute(
        select(params.c.experiment_id, params.c.name, params.c.value_json).where(
            params.c.experiment_id.in_(ids)
        )
    ):
        ids[r.experiment_id]["params"][r.name] = jsonvalue.loads(r.value_json)
    for r in conn.execute(
        select(metric_summaries.c.experiment_id, metric_summaries.c.name, metric_summaries.c.last_json).where(
            metric_summaries.c.experiment_id.in_(ids)
        )
    ):
        ids[r.experiment_id]["metrics"][r.name] = jsonvalue.loads(r.last_json)
    for t in conn.execute(
        select(tags.c.experiment_id, tags.c.tag).where(tags.c.experiment_id.in_(ids)).order_by(tags.c.tag)
    ):
        ids[t.experiment_id]["tags"].append(t.tag)
