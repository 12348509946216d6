"""Which workspace owns an object: the one question every permission check (and audit record) asks.

Each function takes what a route has in hand (an experiment key, a request id, ...) and answers the
owning workspace's name, or None when there is no such object. A caller without a role in the
answer must get the same 404 as for an object that does not exist (see
:mod:`tallymark.server.permissions`), so None and "not yours" are indistinguishable outside.

Workspaces, artifacts and registered models are named inside a workspace, so their owner is the
workspace in the route itself; only objects addressed by a global id or key need a lookup here.
"""

from __future__ import annotations

from sqlalchemy import select

from tallymark.service.store import Store
from tallymark.store.schema import (
    artifacts,
    assets,
    experiments,
    model_versions,
    projects,
    registered_models,
    status_requests,
    workspaces,
)

__all__ = ["experiment_workspace", "request_workspace", "workspace_exists"]


def workspace_exists(store: Store, name: str) -> bool:
    with store.db.read() as conn:
        return conn.execute(select(workspaces.c.id).where(workspaces.c.name == name)).first() is not None


# An experiment never moves to another project nor is deleted (its project_id is written once, at
# insert), so a found owner stays true: cached, bounded, per database, to keep checks query-free.
_EXPERIMENT_OWNERS: dict[tuple[str, str], str] = {}
_OWNERS_MAX = 100_000


def experiment_workspace(store: Store, key: str) -> str | None:
    """The workspace of experiment ``key`` (32 hex), or None."""
    cache_key = (store.db.url, key)  # an attribute: settings.database_url builds a Path per call
    hit = _EXPERIMENT_OWNERS.get(cache_key)
    if hit is not None:
        return hit
    found = _experiment_workspace(store, key)
    if found is not None:
        if len(_EXPERIMENT_OWNERS) >= _OWNERS_MAX:
            _EXPERIMENT_OWNERS.clear()
        _EXPERIMENT_OWNERS[cache_key] = found
    return found


def _experiment_workspace(store: Store, key: str) -> str | None:
    stmt = (
        select(workspaces.c.name)
        .select_from(
            experiments.join(projects, projects.c.id == experiments.c.project_id).join(
                workspaces, workspaces.c.id == projects.c.workspace_id
            )
        )
        .where(experiments.c.key == key)
    )
    with store.db.read() as conn:
        return conn.execute(stmt).scalar()


def request_workspace(store: Store, request_id: int) -> str | None:
    """The workspace of the model whose version a status request ``request_id`` is about, or None."""
    stmt = (
        select(workspaces.c.name)
        .select_from(
            status_requests.join(model_versions, model_versions.c.id == status_requests.c.model_version_id)
            .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
            .join(workspaces, workspaces.c.id == registered_models.c.workspace_id)
        )
        .where(status_requests.c.id == request_id)
    )
    with store.db.read() as conn:
        return conn.execute(stmt).scalar()


def blob_workspaces(store: Store, sha256: str) -> set[str]:
    """The workspaces with an experiment asset of content ``sha256`` (empty: none)."""
    stmt = (
        select(workspaces.c.name)
        .select_from(
            assets.join(experiments, experiments.c.id == assets.c.experiment_id)
            .join(projects, projects.c.id == experiments.c.project_id)
            .join(workspaces, workspaces.c.id == projects.c.workspace_id)
        )
        .where(assets.c.sha256 == sha256)
        .distinct()
    )
    with store.db.read() as conn:
        return set(conn.execute(stmt).scalars())


_ = artifacts  # artifacts and models are addressed by (workspace, name): their owner is in the route
