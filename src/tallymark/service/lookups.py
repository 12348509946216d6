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
    cache_key = (store.settings.database_url, key)
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


# --- artifacts, model versions, blobs (the registry half of the seam) ------------------------------

from tallymark.service import guard  # noqa: E402 - this half's imports stay with it (merges cleanly)
from tallymark.service.caller import Caller  # noqa: E402
from tallymark.service.errors import NotFound  # noqa: E402
from tallymark.store.schema import (  # noqa: E402
    artifact_versions,
    audit_log,
    experiment_models,
    files,
)

__all__ += [
    "allow_visible",
    "artifact_version_workspace",
    "blob_owners",
    "blob_workspaces",
    "blobs_put_by",
    "model_version_workspace",
    "sees",
]


def allow_visible(caller: Caller, op: str, workspace: str | None, missing: str) -> None:
    """:func:`guard.allow`, with the 404 of a workspace the caller has no role in (or of an object
    whose owner is unknown: ``workspace`` None) saying exactly ``missing``, the message of the
    object that does not exist, so the two answers cannot be told apart."""
    try:
        guard.allow(caller, op, workspace)
    except NotFound:
        raise NotFound(missing) from None


def sees(caller: Caller, workspace: str | None) -> bool:
    """Whether ``caller`` may see objects of ``workspace`` (a role there, or the local admin)."""
    if caller.auth_method == "local":
        return True
    return workspace is not None and caller.role(workspace) is not None


def model_version_workspace(store: Store, version_id: int) -> str | None:
    """The workspace of registry model version ``version_id`` (a row id), or None."""
    stmt = (
        select(workspaces.c.name)
        .select_from(
            model_versions.join(
                registered_models, registered_models.c.id == model_versions.c.registered_model_id
            ).join(workspaces, workspaces.c.id == registered_models.c.workspace_id)
        )
        .where(model_versions.c.id == version_id)
    )
    with store.db.read() as conn:
        return conn.execute(stmt).scalar()


def artifact_version_workspace(store: Store, version_id: int) -> str | None:
    """The workspace of artifact version ``version_id`` (a row id), or None."""
    stmt = (
        select(workspaces.c.name)
        .select_from(
            artifact_versions.join(artifacts, artifacts.c.id == artifact_versions.c.artifact_id).join(
                workspaces, workspaces.c.id == artifacts.c.workspace_id
            )
        )
        .where(artifact_versions.c.id == version_id)
    )
    with store.db.read() as conn:
        return conn.execute(stmt).scalar()


def blob_owners(store: Store, shas: list[str]) -> dict[str, set[str]]:
    """For each of ``shas`` that something references, the workspaces of its owners: experiment
    assets, files of (undeleted) artifact versions and files of logged models. A hash nothing
    references is absent from the answer."""
    out: dict[str, set[str]] = {}
    exp_ws = experiments.join(projects, projects.c.id == experiments.c.project_id).join(
        workspaces, workspaces.c.id == projects.c.workspace_id
    )
    with store.db.read() as conn:
        for i in range(0, len(shas), 500):  # bounded IN lists
            part = shas[i : i + 500]
            stmts = [
                select(assets.c.sha256, workspaces.c.name)
                .select_from(assets.join(exp_ws, experiments.c.id == assets.c.experiment_id))
                .where(assets.c.sha256.in_(part)),
                select(files.c.sha256, workspaces.c.name)
                .select_from(
                    files.join(
                        artifact_versions,
                        (files.c.owner_kind == "artifact_version")
                        & (files.c.owner_id == artifact_versions.c.id),
                    )
                    .join(artifacts, artifacts.c.id == artifact_versions.c.artifact_id)
                    .join(workspaces, workspaces.c.id == artifacts.c.workspace_id)
                )
                .where(files.c.sha256.in_(part)),
                select(files.c.sha256, workspaces.c.name)
                .select_from(
                    files.join(
                        experiment_models,
                        (files.c.owner_kind == "model") & (files.c.owner_id == experiment_models.c.id),
                    ).join(exp_ws, experiments.c.id == experiment_models.c.experiment_id)
                )
                .where(files.c.sha256.in_(part)),
            ]
            for stmt in stmts:
                for sha, ws in conn.execute(stmt.distinct()):
                    out.setdefault(sha, set()).add(ws)
    return out


def blobs_put_by(store: Store, actor: str, shas: list[str]) -> set[str]:
    """Which of ``shas`` ``actor`` uploaded (``blob.put`` entries of the audit log): the bytes were
    theirs to send, so the blob is theirs to reference, whoever else stored it first."""
    found: set[str] = set()
    with store.db.read() as conn:
        for i in range(0, len(shas), 500):
            found |= set(
                conn.execute(
                    select(audit_log.c.object_ref).where(
                        audit_log.c.object_kind == "blob",
                        audit_log.c.object_ref.in_(shas[i : i + 500]),
                        audit_log.c.action == "blob.put",
                        audit_log.c.actor == actor,
                    )
                ).scalars()
            )
    return found
