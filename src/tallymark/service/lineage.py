"""The lineage graph: artifact versions, experiments and model versions, joined by edges.

Edges point the way data flows: ``experiment -produced-> artifact_version``,
``artifact_version -consumed-> experiment``, ``experiment -registered_from-> model_version``.
Upstream of a model version are the experiment that made it and, through it, every artifact
version that experiment consumed (with their files' sha256) — the auditor's question in one call.

Jobs are nodes too (docs/jobs.md): ``artifact_version -consumed-> job``, ``job -produced->
artifact_version``, ``job -trained-> experiment`` — so a model's upstream runs through the
training job to the dataset versions it read.

Node references (CLI, API): ``experiment:KEY``, ``artifact:WORKSPACE/NAME:VERSION_OR_ALIAS``,
``model:WORKSPACE/NAME:VERSION``, ``job:NAME``.

A graph is what its caller may see: the root needs a role in its workspace (else the 404 of a node
that does not exist), and nodes of workspaces where the caller has no role are left out, with their
edges, and not walked through (an experiment of another team that consumed this dataset is not
shown, nor what it produced).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, or_, select

from tallymark.service import lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid
from tallymark.service.store import Store, now_ms
from tallymark.store.db import upsert
from tallymark.store.schema import (
    experiments,
    lineage_edges,
    model_versions,
    projects,
    registered_models,
    workspaces,
)

KINDS = ("experiment", "artifact_version", "model_version", "job")


def add_edge(conn: Connection, src_kind: str, src_id: int, dst_kind: str, dst_id: int, relation: str) -> None:
    upsert(
        conn,
        lineage_edges,
        [
            {
                "src_kind": src_kind,
                "src_id": src_id,
                "dst_kind": dst_kind,
                "dst_id": dst_id,
                "relation": relation,
                "created_at": now_ms(),
            }
        ],
        ["src_kind", "src_id", "dst_kind", "dst_id", "relation"],
        None,
    )


def has_edge(conn: Connection, src_kind: str, src_id: int, dst_kind: str, dst_id: int, relation: str) -> bool:
    c = lineage_edges.c
    found = conn.execute(
        select(c.id).where(
            c.src_kind == src_kind,
            c.src_id == src_id,
            c.dst_kind == dst_kind,
            c.dst_id == dst_id,
            c.relation == relation,
        )
    ).first()
    return found is not None


def _edges(conn: Connection, kind: str, node_id: int, direction: str) -> Sequence[Row]:
    c = lineage_edges.c
    cond: ColumnElement[bool]
    if direction == "upstream":
        cond = (c.dst_kind == kind) & (c.dst_id == node_id)
    elif direction == "downstream":
        cond = (c.src_kind == kind) & (c.src_id == node_id)
    else:
        cond = or_((c.dst_kind == kind) & (c.dst_id == node_id), (c.src_kind == kind) & (c.src_id == node_id))
    return conn.execute(select(lineage_edges).where(cond).order_by(c.id)).all()


def describe(conn: Connection, kind: str, node_id: int) -> dict[str, Any]:
    """A node as shown to people: its reference, label and the facts an auditor needs."""
    if kind == "experiment":
        r = conn.execute(
            select(
                experiments.c.key,
                experiments.c.name,
                experiments.c.status,
                experiments.c.user,
                projects.c.name.label("project"),
                workspaces.c.name.label("workspace"),
            )
            .join(projects, projects.c.id == experiments.c.project_id)
            .join(workspaces, workspaces.c.id == projects.c.workspace_id)
            .where(experiments.c.id == node_id)
        ).first()
        if r is None:
            return {"kind": kind, "ref": f"experiment:#{node_id}", "label": "(deleted experiment)"}
        return {
            "kind": kind,
            "ref": f"experiment:{r.key}",
            "key": r.key,
            "name": r.name,
            "workspace": r.workspace,
            "project": r.project,
            "user": r.user,
            "status": r.status,
            "label": f"experiment {r.name or r.key[:12]} ({r.workspace}/{r.project})",
        }
    if kind == "artifact_version":
        from tallymark.service.artifacts import version_dict

        v = version_dict(conn, node_id)
        return {
            "kind": kind,
            "ref": f"artifact:{v['workspace']}/{v['name']}:{v['version']}",
            **v,
            "label": f"{v['artifactType']} {v['name']} {v['version']}"
            + (f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""),
        }
    if kind == "model_version":
        mv = conn.execute(
            select(
                model_versions.c.version,
                model_versions.c.status,
                registered_models.c.name,
                workspaces.c.name.label("workspace"),
            )
            .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
            .join(workspaces, workspaces.c.id == registered_models.c.workspace_id)
            .where(model_versions.c.id == node_id)
        ).one()
        return {
            "kind": kind,
            "ref": f"model:{mv.workspace}/{mv.name}:{mv.version}",
            "name": mv.name,
            "version": mv.version,
            "status": mv.status,
            "workspace": mv.workspace,
            "label": f"model {mv.name} {mv.version} ({mv.status})",
        }
    if kind == "job":
        return describe_job(conn, node_id)
    raise Invalid(f"unknown node kind {kind!r}")


def neighbours(conn: Connection, kind: str, node_id: int, direction: str) -> list[dict[str, Any]]:
    out = []
    for e in _edges(conn, kind, node_id, direction):
        other = (
            (e.src_kind, e.src_id) if (e.dst_kind, e.dst_id) == (kind, node_id) else (e.dst_kind, e.dst_id)
        )
        d = describe(conn, *other)
        out.append(
            {"ref": d["ref"], "label": d["label"], "relation": e.relation, "workspace": d.get("workspace")}
        )
    return out


def resolve(conn: Connection, ref: str) -> tuple[str, int]:
    """Turn a node reference into (kind, id)."""
    kind, _, rest = ref.partition(":")
    if not rest:
        raise Invalid(
            f"{ref!r} is not a node reference: experiment:KEY, artifact:WS/NAME:VERSION or "
            "model:WS/NAME:VERSION"
        )
    if kind == "experiment":
        from tallymark.service.experiments import experiment_row

        return "experiment", experiment_row(conn, rest).id
    if kind == "job":
        return "job", job_id(conn, rest)
    ws, slash, name_ver = rest.partition("/")
    name, colon, ver = name_ver.rpartition(":")
    if not slash or not colon or not name:
        raise Invalid(f"{ref!r}: write {kind}:WORKSPACE/NAME:VERSION")
    if kind == "artifact":
        from tallymark.service.artifacts import _resolve

        return "artifact_version", _resolve(conn, ws, name, ver)
    if kind == "model":
        from tallymark.service.registry import resolve_version

        return "model_version", resolve_version(conn, ws, name, ver)
    raise Invalid(f"unknown node kind {kind!r} in {ref!r}")


def _root_allowed(store: Store, caller: Caller, ref: str) -> None:
    """``lineage.get`` on the root's workspace, a 404 like that of a missing node when refused."""
    kind, _, rest = ref.partition(":")
    if kind == "experiment" and rest:
        ws = lookups.experiment_workspace(store, rest)
        lookups.allow_visible(caller, "lineage.get", ws, f"no experiment with key {rest!r}")
    elif kind in ("artifact", "model") and "/" in rest:
        ws, _, name_ver = rest.partition("/")
        name = name_ver.rpartition(":")[0] or name_ver
        what = "artifact" if kind == "artifact" else "registered model"
        lookups.allow_visible(caller, "lineage.get", ws, f"no {what} {name!r} in workspace {ws!r}")
    elif kind == "job" and rest:
        lookups.allow_visible(caller, "lineage.get", job_workspace(store, rest), f"no job {rest!r}")
    # anything else is not a reference: resolve() says so


def get_lineage(
    store: Store, caller: Caller, ref: str, direction: str = "both", depth: int = 10
) -> dict[str, Any]:
    """The graph around a node that ``caller`` may see, breadth first up to ``depth`` edges away."""
    if direction not in ("upstream", "downstream", "both"):
        raise Invalid("direction must be upstream, downstream or both")
    if not 1 <= depth <= 50:
        raise Invalid("depth must be between 1 and 50")
    _root_allowed(store, caller, ref)
    with store.db.read() as conn:
        root = resolve(conn, ref)
        nodes: dict[tuple[str, int], dict[str, Any]] = {root: describe(conn, *root)}
        edges: list[dict[str, Any]] = []
        seen_edges: set[int] = set()
        hidden: set[tuple[str, int]] = set()
        dirs = ("upstream", "downstream") if direction == "both" else (direction,)
        for d in dirs:
            frontier = [root]
            for _ in range(depth):
                nxt = []
                for node in frontier:
                    for e in _edges(conn, node[0], node[1], d):
                        other = (e.src_kind, e.src_id) if d == "upstream" else (e.dst_kind, e.dst_id)
                        if other in hidden:
                            continue
                        if e.id not in seen_edges:
                            if other not in nodes:
                                d_other = describe(conn, *other)
                                if not lookups.sees(caller, d_other.get("workspace")):
                                    hidden.add(other)
                                    continue
                                nodes[other] = d_other
                                nxt.append(other)
                            seen_edges.add(e.id)
                            edges.append(
                                {
                                    "src": nodes[(e.src_kind, e.src_id)]["ref"],
                                    "dst": nodes[(e.dst_kind, e.dst_id)]["ref"],
                                    "relation": e.relation,
                                }
                            )
                frontier = nxt
                if not frontier:
                    break
    return {"root": nodes[root]["ref"], "nodes": list(nodes.values()), "edges": edges}


# ---- jobs as lineage nodes (docs/jobs.md): ``job:NAME`` (job names are unique), seen by whoever has
# a role in the job's workspace; edges artifact_version -consumed-> job, job -produced->
# artifact_version, job -trained-> experiment.


def job_id(conn: Connection, name: str) -> int:
    from tallymark.store.schema import jobs

    found = conn.execute(select(jobs.c.id).where(jobs.c.name == name)).scalar()
    if found is None:
        from tallymark.service.errors import NotFound

        raise NotFound(f"no job {name!r}")
    return int(found)


def job_workspace(store: Store, name: str) -> str | None:
    from tallymark.store.schema import jobs

    with store.db.read() as conn:
        return conn.execute(
            select(workspaces.c.name)
            .join(jobs, jobs.c.workspace_id == workspaces.c.id)
            .where(jobs.c.name == name)
        ).scalar()


def describe_job(conn: Connection, node_id: int) -> dict[str, Any]:
    from tallymark.store.schema import jobs

    r = conn.execute(
        select(
            jobs.c.name,
            jobs.c.kind,
            jobs.c.status,
            jobs.c.backend,
            jobs.c.exit_code,
            workspaces.c.name.label("ws"),
        )
        .join(workspaces, workspaces.c.id == jobs.c.workspace_id)
        .where(jobs.c.id == node_id)
    ).first()
    if r is None:
        return {"kind": "job", "ref": f"job:#{node_id}", "label": "(deleted job)"}
    return {
        "kind": "job",
        "ref": f"job:{r.name}",
        "name": r.name,
        "job_kind": r.kind,
        "status": r.status,
        "backend": r.backend,
        "exit_code": r.exit_code,
        "workspace": r.ws,
        "label": f"{r.kind} job {r.name} ({r.status})",
    }


def check_visible(store: Store, caller: Caller, ref: str) -> None:
    """The 404 of a missing node unless ``caller`` may see the node ``ref`` names."""
    _root_allowed(store, caller, ref)
