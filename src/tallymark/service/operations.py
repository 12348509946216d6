"""Every operation of tallymark, listed once: its name, the permission it needs and its audit action.

The service function that carries an operation out checks it (:func:`tallymark.service.guard.allow`
for reads, :func:`tallymark.service.guard.write` for writes, which also appends the audit entry in
the change's transaction); a REST route declares the operation it serves
(``dependencies=[need("experiment.create")]``), so its permission comes from here and cannot be
forgotten; both SDK transports name their calls by operation, and a test checks that each name
is listed here and that the two transports offer the same operations.

Permissions, weakest first:

``public``            anyone, also anonymous (health, static files, OpenAPI/docs, the login page)
``authenticated``     any valid key or session
``workspace:viewer``  a role in the workspace the operation touches (read)
``workspace:member``  member or admin there (create and log experiments, artifacts, models, requests)
``workspace:admin``   admin there (delete)
``server:admin``      a server admin (users, workspaces, memberships, keys, links; raw blobs by hash)

``approver=True`` also needs the approver flag of the workspace (four eyes: that the approver is
not the requester is the registry's rule, with the name coming from the key or session).

An operation with an ``audit`` action is a write: each call that changes something appends one
entry with that action (a metric batch is one entry, not one per point). Auth events that change
nothing else (a failed login, a replayed link) are listed too, as the auth service records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["OPERATIONS", "PERMISSIONS", "Operation", "Permission", "operation", "writes"]

Permission = Literal[
    "public", "authenticated", "workspace:viewer", "workspace:member", "workspace:admin", "server:admin"
]
PERMISSIONS: tuple[str, ...] = Permission.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Operation:
    name: str
    permission: Permission
    audit: str | None = None  # the audit action of a write; None for a read
    approver: bool = False
    summary: str = ""

    @property
    def is_write(self) -> bool:
        return self.audit is not None


def _ops(*ops: Operation) -> dict[str, Operation]:
    out: dict[str, Operation] = {}
    for op in ops:
        if op.name in out:
            raise ValueError(f"operation {op.name!r} is listed twice")
        if op.permission not in PERMISSIONS:
            raise ValueError(f"operation {op.name!r}: unknown permission {op.permission!r}")
        out[op.name] = op
    return out


V: Permission = "workspace:viewer"
M: Permission = "workspace:member"
A: Permission = "workspace:admin"
S: Permission = "server:admin"

OPERATIONS: dict[str, Operation] = _ops(
    # -- the process -----------------------------------------------------------------------------
    Operation("health", "public", summary="liveness, schema and whether `admin init` is needed"),
    Operation("api.describe", "public", summary="OpenAPI description and docs pages"),
    Operation("ui.static", "public", summary="the UI's own JS, CSS and fonts"),
    Operation("ui.page", "authenticated", summary="a UI page (its data is checked per workspace)"),
    Operation("ui.whoami", "public", summary="the signed-in user and their roles (anonymous: none)"),
    Operation("ui.workspace", V, summary="a UI page of a workspace, and its JSON helpers under /-/"),
    Operation("ui.admin", S, summary="the admin and audit pages (writes: the admin routes)"),
    # -- tracking --------------------------------------------------------------------------------
    Operation("experiment.create", M, "experiment.create", summary="create an experiment"),
    Operation("experiment.log", M, "experiment.log", summary="a batch: params, metrics, others, tags"),
    Operation("experiment.end", M, "experiment.end", summary="end an experiment"),
    Operation("experiment.import", M, "experiment.import", summary="open or end an offline import"),
    Operation("experiment.reopen", M, "experiment.reopen", summary="resume an ended experiment (comet)"),
    Operation("asset.add", M, "asset.add", summary="upload an asset of an experiment"),
    Operation("experiment.delete", A, "experiment.delete", summary="delete an experiment nothing depends on"),
    Operation("workspace.list", "authenticated", summary="workspaces the caller has a role in"),
    Operation("project.list", V, summary="projects of a workspace"),
    Operation("experiment.query", V, summary="search experiments"),
    Operation("experiment.get", V, summary="one experiment"),
    Operation("experiment.read", V, summary="params, others, tags, metrics, items of an experiment"),
    Operation("metric.read", V, summary="metric histories (one or many experiments)"),
    Operation("asset.list", V, summary="assets of an experiment"),
    Operation("asset.read", V, summary="an asset's bytes"),
    Operation("panel.list", "authenticated", summary="the panels this server offers"),
    Operation("panel.render", V, summary="render a panel over experiments"),
    # -- blobs -----------------------------------------------------------------------------------
    Operation("blob.missing", "authenticated", summary="which of these hashes are not stored"),
    Operation("blob.put", "authenticated", "blob.put", summary="store content-addressed bytes"),
    Operation("blob.read", S, summary="raw bytes by hash, without an owner"),
    Operation("blob.gc", S, "blob.gc", summary="delete blobs nothing references (tallymark gc)"),
    # -- artifacts and lineage --------------------------------------------------------------------
    Operation("artifact.list", V, summary="artifacts of a workspace"),
    Operation("artifact.versions", V, summary="versions of an artifact"),
    Operation("artifact.get", V, summary="resolve a version or alias"),
    Operation("artifact.log", M, "artifact_version.log", summary="log an artifact version"),
    Operation("artifact.consume", M, "artifact_version.consume", summary="record an experiment's input"),
    Operation("artifact.alias", M, "artifact_version.alias", summary="set a version's aliases (comet)"),
    Operation("artifact.close", M, "artifact_version.close", summary="close an open version (comet)"),
    Operation("artifact.abandon", M, "artifact_version.abandon", summary="withdraw an open version"),
    Operation("artifact.delete", A, "artifact_version.delete", summary="delete an unconsumed version"),
    Operation("lineage.get", V, summary="the lineage graph around a node"),
    # -- the model registry ------------------------------------------------------------------------
    Operation("model.log", M, "model.log", summary="log a model of an experiment"),
    Operation("model.logged", V, summary="models logged by an experiment"),
    Operation("model.list", V, summary="registered models of a workspace"),
    Operation("model.get", V, summary="one registered model, its versions, a version, its inputs"),
    Operation("model.register", M, "model_version.register", summary="register a logged model"),
    Operation("model.set_status", M, "model_version.status", summary="set a stage other than Production"),
    Operation("model.request", M, "model_version.request", summary="request a stage change"),
    Operation("model.tag", M, "model_version.tag", summary="tag a model version"),
    Operation("request.list", V, summary="status requests of a model"),
    Operation("request.approve", M, "model_version.approve", approver=True, summary="approve a request"),
    Operation("request.reject", M, "model_version.reject", approver=True, summary="reject a request"),
    Operation("model.trust", A, "model_version.trust", summary="allow a version in a format that unpickles"),
    # -- jobs ------------------------------------------------------------------------------------
    Operation("job.create", M, "job.create", summary="submit a processing or training job"),
    Operation("job.status", M, "job.status", summary="a job's runner reports status, timings, exit code"),
    Operation("job.log", M, "job.log", summary="a job's runner appends a batch of its output"),
    Operation("job.link", M, "job.link", summary="record a job's inputs, outputs or experiment"),
    Operation("job.stop", M, "job.stop", summary="ask a running job to stop"),
    Operation("job.list", V, summary="jobs of a workspace"),
    Operation("job.get", V, summary="one job: spec, status, attempts, its log"),
    # -- endpoints -------------------------------------------------------------------------------
    Operation("endpoint.create", M, "endpoint.create", summary="deploy a model version behind an endpoint"),
    Operation("endpoint.status", M, "endpoint.status", summary="an endpoint reports its address or failure"),
    Operation("endpoint.delete", M, "endpoint.delete", summary="stop and delete an endpoint"),
    Operation("endpoint.list", V, summary="endpoints of a workspace"),
    Operation("endpoint.get", V, summary="one endpoint, and its model for serving"),
    Operation(
        "prediction.log", M, "prediction.log", summary="an endpoint ships a chunk of its prediction log"
    ),
    Operation("prediction.label", M, "prediction.label", summary="ground truth for logged predictions"),
    Operation("prediction.read", V, summary="read an endpoint's prediction log and labels"),
    # -- the comet_ml adapter (each route calls the operations above, which check again) ------------
    Operation("comet.read", V, summary="comet_ml SDK reads"),
    Operation("comet.write", M, "comet.write", summary="comet_ml SDK writes"),
    Operation("comet.unknown", "authenticated", summary="a comet_ml path the adapter lacks (its 404)"),
    # -- sign-in --------------------------------------------------------------------------------
    Operation("session.login", "public", "session.login", summary="sign in with an API key"),
    Operation("session.login_failed", "public", "session.login_failed", summary="a refused sign-in"),
    Operation("session.logout", "public", "session.logout", summary="end this session (if any)"),
    Operation("link.use", "public", "link.use", summary="open a pre-signed login link"),
    Operation("link.replay", "public", "link.replay", summary="a link opened twice (refused)"),
    Operation("link.expired", "public", "link.expired", summary="an expired link (refused)"),
    # -- administration --------------------------------------------------------------------------
    Operation("admin.init", S, "admin.init", summary="create the first admin"),
    Operation("user.list", S, summary="users"),
    Operation("user.add", S, "user.add", summary="add a user"),
    Operation("user.disable", S, "user.disable", summary="disable a user (ends their keys and sessions)"),
    Operation("workspace.admin_list", S, summary="all workspaces"),
    Operation("workspace.create", S, "workspace.create", summary="create a workspace"),
    Operation("member.list", S, summary="members of a workspace"),
    Operation("member.set", S, "membership.set", summary="add a member or change their role"),
    Operation("member.remove", S, "membership.remove", summary="remove a member"),
    Operation("key.list", S, summary="API keys: created, last used, expiry, revoked"),
    Operation("key.create", S, "api_key.create", summary="create an API key (shown once)"),
    Operation("key.revoke", S, "api_key.revoke", summary="revoke an API key"),
    Operation("link.issue", S, "link.issue", summary="issue a pre-signed login link"),
    Operation("session.list", S, summary="sessions of a user"),
    Operation("session.revoke", S, "session.revoke", summary="end a user's sessions"),
    Operation("audit.read", S, summary="read the audit log"),
    Operation("audit.checkpoint", S, "audit.checkpoint", summary="sign a checkpoint now"),
)


def operation(name: str) -> Operation:
    """The operation called ``name`` (KeyError names it when it is not listed: a bug)."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"operation {name!r} is not listed in tallymark.service.operations") from None


def writes() -> list[Operation]:
    return [op for op in OPERATIONS.values() if op.is_write]
