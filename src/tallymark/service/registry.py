"""Logged models and the model registry, with four-eyes promotion to production.

Statuses: development → staging → production → archived. Moving a version to ``production`` is a
*request* that a different identity must approve (or reject); every change of status is kept in
``model_transitions`` with actor, time, comment and the request that caused it. When a version
reaches production, the version that was in production before is archived (recorded too).

Every operation takes the :class:`~tallymark.service.caller.Caller` second; the actor recorded is
``caller.name``. Reads need a role in the model's workspace (a model of a workspace where the caller
has none answers the 404 of one that does not exist). Each write runs in
:func:`tallymark.service.guard.write`, so its check, its change and its audit entries commit
together: ``model.log`` (on the ``experiment``), ``model_version.register``,
``model_version.request``, ``model_version.approve`` / ``model_version.reject``,
``model_version.tag`` and one ``model_version.status`` per change of status (after the request or
approval that caused it), each on the object ``model_version`` ``WORKSPACE/NAME:VERSION``.
Approving or rejecting needs the approver flag of the model's workspace, and never by the person
who asked (four eyes; the name comes from the key or session, not from the request).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tallymark import jsonvalue
from tallymark.service import guard, lineage, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Forbidden, Invalid, NotFound
from tallymark.service.experiments import _workspace_id, experiment_row, require_running
from tallymark.service.files import check_files, insert_files, owned_blob, read_files, require_visible
from tallymark.service.models import DecisionIn, ModelIn, RegisterIn, StatusRequestIn, validated
from tallymark.service.store import Store, now_ms
from tallymark.service.versions import allocate
from tallymark.store.db import inserted_id
from tallymark.store.schema import (
    experiment_models,
    experiments,
    model_transitions,
    model_versions,
    registered_models,
    status_requests,
    workspaces,
)

NEEDS_APPROVAL = "production"


def _no_experiment(key: str) -> str:
    return f"no experiment with key {key!r}"


def _no_model(workspace: str, name: str) -> str:
    return f"no registered model {name!r} in workspace {workspace!r}"


def _ref(workspace: str, name: str, version: str) -> tuple[str, str]:
    return "model_version", f"{workspace}/{name}:{version}"


def log_model(store: Store, caller: Caller, key: str, data: ModelIn | dict[str, Any]) -> dict[str, Any]:
    """Record a model logged by an experiment: stored files and/or a remote URI."""
    ws = lookups.experiment_workspace(store, key)
    lookups.allow_visible(caller, "model.log", ws, _no_experiment(key))
    spec = validated(ModelIn, data)
    if not spec.files and spec.remote_uri is None:
        raise Invalid(f"model {spec.name!r} needs files or a remote URI")
    rows = check_files(store, spec.files)
    require_visible(store, caller, rows)
    with guard.write(
        store,
        caller,
        "model.log",
        workspace=ws,
        object=("experiment", key),
        payload=spec.model_dump(mode="json"),
    ) as w:
        conn = w.conn
        row = experiment_row(conn, key, for_update=True)
        require_running(row)
        if conn.execute(
            select(experiment_models.c.id).where(
                experiment_models.c.experiment_id == row.id, experiment_models.c.name == spec.name
            )
        ).first():
            raise Conflict(f"experiment {key} already logged a model named {spec.name!r}")
        res = conn.execute(
            experiment_models.insert().values(
                experiment_id=row.id,
                name=spec.name,
                remote_uri=spec.remote_uri,
                metadata_json=None if spec.metadata is None else jsonvalue.dumps(spec.metadata),
                created_at=now_ms(),
            )
        )
        mid = inserted_id(res)
        insert_files(conn, "model", mid, rows)
        out = _model_dict(conn, mid)
    return out


def _model_dict(conn: Connection, mid: int) -> dict[str, Any]:
    m = conn.execute(
        select(experiment_models, experiments.c.key)
        .join(experiments, experiments.c.id == experiment_models.c.experiment_id)
        .where(experiment_models.c.id == mid)
    ).one()
    return {
        "id": mid,
        "name": m.name,
        "experimentKey": m.key,
        "remoteUri": m.remote_uri,
        "metadata": None if m.metadata_json is None else jsonvalue.loads(m.metadata_json),
        "files": read_files(conn, "model", mid),
        "createdAt": m.created_at,
    }


def list_logged_models(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    lookups.allow_visible(
        caller, "model.logged", lookups.experiment_workspace(store, key), _no_experiment(key)
    )
    with store.db.read() as conn:
        eid = experiment_row(conn, key).id
        ids = conn.execute(
            select(experiment_models.c.id)
            .where(experiment_models.c.experiment_id == eid)
            .order_by(experiment_models.c.id)
        ).scalars()
        return [_model_dict(conn, i) for i in list(ids)]


def _registered(
    conn: Connection, workspace: str, name: str, create_by: str | None = None, description: str | None = None
) -> int:
    ws = _workspace_id(conn, workspace, create=create_by is not None)
    row = (
        None
        if ws is None
        else conn.execute(
            select(registered_models.c.id).where(
                registered_models.c.workspace_id == ws, registered_models.c.name == name
            )
        ).first()
    )
    if row is not None:
        return row.id
    if create_by is None:
        raise NotFound(f"no registered model {name!r} in workspace {workspace!r}")
    res = conn.execute(
        registered_models.insert().values(
            workspace_id=ws, name=name, description=description, created_at=now_ms(), created_by=create_by
        )
    )
    return inserted_id(res)


def resolve_version(conn: Connection, workspace: str, name: str, version: str) -> int:
    rid = _registered(conn, workspace, name)
    row = conn.execute(
        select(model_versions.c.id).where(
            model_versions.c.registered_model_id == rid, model_versions.c.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} has no version {version!r}")
    return row.id


def _object(conn: Connection, vid: int) -> tuple[str, str]:
    """The audit object of model version ``vid``: ``("model_version", "WORKSPACE/NAME:VERSION")``."""
    v = conn.execute(
        select(workspaces.c.name.label("ws"), registered_models.c.name, model_versions.c.version)
        .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
        .join(workspaces, workspaces.c.id == registered_models.c.workspace_id)
        .where(model_versions.c.id == vid)
    ).one()
    return _ref(v.ws, v.name, v.version)


def _transition(
    w: guard.Write,
    vid: int,
    to: str,
    actor: str,
    comment: str | None,
    request_id: int | None = None,
    main: bool = False,
) -> None:
    """Move version ``vid`` to status ``to``, with its history row and its ``model_version.status``
    entry: the write's own (``main``) or one that follows the request or approval that caused it."""
    conn = w.conn
    cur = conn.execute(select(model_versions.c.status).where(model_versions.c.id == vid)).scalar()
    conn.execute(model_versions.update().where(model_versions.c.id == vid).values(status=to))
    payload = {"from": cur, "to": to, "comment": comment, "status_request": request_id}
    if main:
        w.object, w.payload = _object(conn, vid), payload
    else:
        w.then.append(("model_version.status", _object(conn, vid), payload))
    conn.execute(
        model_transitions.insert().values(
            model_version_id=vid,
            from_status=cur,
            to_status=to,
            actor=actor,
            at=now_ms(),
            comment=comment,
            request_id=request_id,
        )
    )


def register_model(
    store: Store, caller: Caller, workspace: str, model_name: str, data: RegisterIn | dict[str, Any]
) -> dict[str, Any]:
    """Create a registry version from a model an experiment logged (lineage: registered_from)."""
    from tallymark.service.models import _scope_name

    try:
        _scope_name(workspace)
        _scope_name(model_name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    lookups.allow_visible(caller, "model.register", workspace, _no_model(workspace, model_name))
    spec = validated(RegisterIn, data)
    # The model comes from an experiment: the caller must be able to read it (lineage records it).
    src_ws = lookups.experiment_workspace(store, spec.experiment_key)
    lookups.allow_visible(caller, "model.logged", src_ws, _no_experiment(spec.experiment_key))
    if spec.status == NEEDS_APPROVAL:
        raise Forbidden(
            "a new version cannot start in production: register it, then request production "
            "for another person to approve"
        )
    actor = caller.name
    with guard.write(
        store,
        caller,
        "model.register",
        workspace=workspace,
        object=("model_version", f"{workspace}/{model_name}"),
        payload=spec.model_dump(mode="json"),
    ) as w:
        conn = w.conn
        eid = experiment_row(conn, spec.experiment_key).id
        em = conn.execute(
            select(experiment_models.c.id).where(
                experiment_models.c.experiment_id == eid, experiment_models.c.name == spec.experiment_model
            )
        ).first()
        if em is None:
            raise NotFound(
                f"experiment {spec.experiment_key} logged no model named {spec.experiment_model!r}"
            )
        rid = _registered(conn, workspace, model_name, create_by=actor, description=spec.description)
        if conn.dialect.name == "postgresql":
            conn.execute(
                select(registered_models.c.id).where(registered_models.c.id == rid).with_for_update()
            )
        version, major, minor, patch = allocate(
            conn,
            model_versions,
            model_versions.c.registered_model_id,
            rid,
            spec.version,
            f"model {model_name!r}",
        )
        res = conn.execute(
            model_versions.insert().values(
                registered_model_id=rid,
                version=version,
                major=major,
                minor=minor,
                patch=patch,
                status=spec.status,
                description=spec.description,
                tags_json=jsonvalue.dumps(list(dict.fromkeys(spec.tags))),
                experiment_model_id=em.id,
                created_at=now_ms(),
                created_by=actor,
            )
        )
        vid = inserted_id(res)
        conn.execute(
            model_transitions.insert().values(
                model_version_id=vid,
                from_status=None,
                to_status=spec.status,
                actor=actor,
                at=now_ms(),
                comment="registered",
            )
        )
        lineage.add_edge(conn, "experiment", eid, "model_version", vid, "registered_from")
        w.object = _ref(workspace, model_name, version)
        out = _version_dict(conn, vid)
    return out


def _version_dict(conn: Connection, vid: int) -> dict[str, Any]:
    v = conn.execute(
        select(model_versions, registered_models.c.name)
        .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
        .where(model_versions.c.id == vid)
    ).one()
    model = _model_dict(conn, v.experiment_model_id)
    history = [
        {
            "from": t.from_status,
            "to": t.to_status,
            "actor": t.actor,
            "at": t.at,
            "comment": t.comment,
            "requestId": t.request_id,
        }
        for t in conn.execute(
            select(model_transitions)
            .where(model_transitions.c.model_version_id == vid)
            .order_by(model_transitions.c.id)
        )
    ]
    return {
        "id": vid,
        "name": v.name,
        "version": v.version,
        "status": v.status,
        "description": v.description,
        "tags": jsonvalue.loads(v.tags_json) if v.tags_json else [],
        "createdAt": v.created_at,
        "createdBy": v.created_by,
        "experimentKey": model["experimentKey"],
        "experimentModel": model["name"],
        "remoteUri": model["remoteUri"],
        "files": model["files"],
        "metadata": model["metadata"],
        "history": history,
    }


def get_model(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    lookups.allow_visible(caller, "model.get", workspace, _no_model(workspace, name))
    with store.db.read() as conn:
        rid = _registered(conn, workspace, name)
        r = conn.execute(select(registered_models).where(registered_models.c.id == rid)).one()
        ids = conn.execute(
            select(model_versions.c.id)
            .where(model_versions.c.registered_model_id == rid)
            .order_by(model_versions.c.major, model_versions.c.minor, model_versions.c.patch)
        )
        versions = [_version_dict(conn, i) for i in ids.scalars().all()]
        pending = _requests(conn, rid, "pending")
    return {
        "workspace": workspace,
        "name": name,
        "description": r.description,
        "createdAt": r.created_at,
        "createdBy": r.created_by,
        "versions": versions,
        "pendingRequests": pending,
    }


def list_models(store: Store, caller: Caller, workspace: str) -> list[dict[str, Any]]:
    lookups.allow_visible(caller, "model.list", workspace, f"no workspace named {workspace!r}")
    with store.db.read() as conn:
        ws = _workspace_id(conn, workspace, create=False)
        if ws is None:
            raise NotFound(f"no workspace named {workspace!r}")
        rows = conn.execute(
            select(registered_models)
            .where(registered_models.c.workspace_id == ws)
            .order_by(registered_models.c.name)
        ).all()
        out = []
        for r in rows:
            vs = conn.execute(
                select(model_versions.c.version, model_versions.c.status)
                .where(model_versions.c.registered_model_id == r.id)
                .order_by(model_versions.c.major, model_versions.c.minor, model_versions.c.patch)
            ).all()
            out.append(
                {
                    "name": r.name,
                    "versions": len(vs),
                    "latest": vs[-1].version if vs else None,
                    "production": [v.version for v in vs if v.status == "production"],
                    "pendingRequests": len(_requests(conn, r.id, "pending")),
                }
            )
    return out


def get_version(store: Store, caller: Caller, workspace: str, name: str, version: str) -> dict[str, Any]:
    lookups.allow_visible(caller, "model.get", workspace, _no_model(workspace, name))
    with store.db.read() as conn:
        return _version_dict(conn, resolve_version(conn, workspace, name, version))


def model_file(
    store: Store, caller: Caller, workspace: str, name: str, version: str, sha256: str
) -> tuple[int, Any]:
    """(size, bytes) of the file ``sha256`` of a model version the caller may read."""
    v = get_version(store, caller, workspace, name, version)
    return owned_blob(store, sha256, v["files"], f"model {name!r} {version}")


def find_versions(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    status: str | None = None,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    versions = get_model(store, caller, workspace, name)["versions"]
    return [
        v for v in versions if (status is None or v["status"] == status) and (tag is None or tag in v["tags"])
    ]


def set_status(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    version: str,
    data: StatusRequestIn | dict[str, Any],
) -> dict[str, Any]:
    """Change a version's status directly — for every status but production, which needs approval."""
    lookups.allow_visible(caller, "model.set_status", workspace, _no_model(workspace, name))
    spec = validated(StatusRequestIn, data)
    if spec.status == NEEDS_APPROVAL:
        raise Forbidden(
            "moving a version to production needs a second person's approval: use "
            "request_status (tallymark models request) and have someone else approve it"
        )
    with guard.write(
        store, caller, "model.set_status", workspace=workspace, object=_ref(workspace, name, version)
    ) as w:
        vid = resolve_version(w.conn, workspace, name, version)
        _transition(w, vid, spec.status, caller.name, spec.comment, main=True)
        out = _version_dict(w.conn, vid)
    return out


def request_status(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    version: str,
    data: StatusRequestIn | dict[str, Any],
) -> dict[str, Any]:
    """Ask for a status change; production waits for another identity's approval."""
    lookups.allow_visible(caller, "model.request", workspace, _no_model(workspace, name))
    spec = validated(StatusRequestIn, data)
    actor = caller.name
    with guard.write(
        store, caller, "model.request", workspace=workspace, object=_ref(workspace, name, version)
    ) as w:
        conn = w.conn
        vid = resolve_version(conn, workspace, name, version)
        cur = conn.execute(select(model_versions.c.status).where(model_versions.c.id == vid)).scalar()
        if cur == spec.status:
            raise Conflict(f"{name} {version} is already {cur}")
        dup = conn.execute(
            select(status_requests.c.id).where(
                status_requests.c.model_version_id == vid,
                status_requests.c.state == "pending",
                status_requests.c.to_status == spec.status,
            )
        ).first()
        if dup is not None:
            raise Conflict(f"request {dup.id} for {name} {version} → {spec.status} is already pending")
        res = conn.execute(
            status_requests.insert().values(
                model_version_id=vid,
                to_status=spec.status,
                requested_by=actor,
                requested_at=now_ms(),
                comment=spec.comment,
                state="pending",
            )
        )
        rid = inserted_id(res)
        w.payload = {**spec.model_dump(mode="json"), "status_request": rid}
        if spec.status != NEEDS_APPROVAL:  # no approval needed: apply at once, keep the request as record
            _decide(w, rid, actor, "approved", spec.comment, four_eyes=False)
        out = _request_dict(conn, rid)
    return out


def _decide(
    w: guard.Write, request_id: int, actor: str, state: str, comment: str | None, four_eyes: bool = True
) -> None:
    conn = w.conn
    req = conn.execute(select(status_requests).where(status_requests.c.id == request_id)).first()
    if req is None:
        raise NotFound(f"no status request {request_id}")
    if req.state != "pending":
        raise Conflict(f"request {request_id} was already {req.state} by {req.decided_by}")
    if four_eyes and req.requested_by == actor:
        verb = "approve" if state == "approved" else "reject"
        raise Forbidden(
            f"{actor} requested this change and cannot also {verb} it: another person must decide (four eyes)"
        )
    conn.execute(
        status_requests.update()
        .where(status_requests.c.id == request_id)
        .values(state=state, decided_by=actor, decided_at=now_ms(), decision_comment=comment)
    )
    if four_eyes:  # a request applied at once is recorded by its request and status entries
        w.object = _object(conn, req.model_version_id)
        w.payload = {"status_request": request_id, "to": req.to_status, "comment": comment}
    if state == "approved":
        if req.to_status == NEEDS_APPROVAL:
            rm = conn.execute(
                select(model_versions.c.registered_model_id).where(
                    model_versions.c.id == req.model_version_id
                )
            ).scalar()
            for old in conn.execute(
                select(model_versions.c.id, model_versions.c.version).where(
                    model_versions.c.registered_model_id == rm,
                    model_versions.c.status == NEEDS_APPROVAL,
                    model_versions.c.id != req.model_version_id,
                )
            ).all():
                _transition(w, old.id, "archived", actor, "superseded in production", request_id)
        _transition(
            w,
            req.model_version_id,
            req.to_status,
            actor,
            comment or f"approved request {request_id}",
            request_id,
        )


def decide(
    store: Store, caller: Caller, request_id: int, approve: bool, data: DecisionIn | dict[str, Any] | None
) -> dict[str, Any]:
    """Approve or reject a pending request (``request.approve`` / ``request.reject``): the approver
    flag of the model's workspace, and someone other than the requester (four eyes)."""
    op = "request.approve" if approve else "request.reject"
    ws = lookups.request_workspace(store, request_id)
    lookups.allow_visible(caller, op, ws, f"no status request {request_id}")
    spec = validated(DecisionIn, data)
    with guard.write(store, caller, op, workspace=ws, object=("status_request", str(request_id))) as w:
        _decide(w, request_id, caller.name, "approved" if approve else "rejected", spec.comment)
        out = _request_dict(w.conn, request_id)
    return out


def _request_dict(conn: Connection, rid: int) -> dict[str, Any]:
    r = conn.execute(
        select(status_requests, model_versions.c.version, registered_models.c.name)
        .join(model_versions, model_versions.c.id == status_requests.c.model_version_id)
        .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
        .where(status_requests.c.id == rid)
    ).one()
    return {
        "id": r.id,
        "model": r.name,
        "version": r.version,
        "toStatus": r.to_status,
        "requestedBy": r.requested_by,
        "requestedAt": r.requested_at,
        "comment": r.comment,
        "state": r.state,
        "decidedBy": r.decided_by,
        "decidedAt": r.decided_at,
        "decisionComment": r.decision_comment,
    }


def _requests(conn: Connection, registered_id: int, state: str | None) -> list[dict[str, Any]]:
    stmt = (
        select(status_requests.c.id)
        .join(model_versions, model_versions.c.id == status_requests.c.model_version_id)
        .where(model_versions.c.registered_model_id == registered_id)
    )
    if state is not None:
        stmt = stmt.where(status_requests.c.state == state)
    return [_request_dict(conn, i) for i in conn.execute(stmt.order_by(status_requests.c.id)).scalars().all()]


def list_requests(
    store: Store, caller: Caller, workspace: str, name: str, state: str | None = None
) -> list[dict[str, Any]]:
    lookups.allow_visible(caller, "request.list", workspace, _no_model(workspace, name))
    with store.db.read() as conn:
        return _requests(conn, _registered(conn, workspace, name), state)


def add_tag(
    store: Store, caller: Caller, workspace: str, name: str, version: str, tag: str
) -> dict[str, Any]:
    """Tag a version (``model_version.tag``); a tag it has already changes nothing."""
    from tallymark.service.models import _name

    lookups.allow_visible(caller, "model.tag", workspace, _no_model(workspace, name))
    try:
        _name(tag)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    with guard.write(
        store,
        caller,
        "model.tag",
        workspace=workspace,
        object=_ref(workspace, name, version),
        payload={"tag": tag},
    ) as w:
        conn = w.conn
        vid = resolve_version(conn, workspace, name, version)
        cur = conn.execute(select(model_versions.c.tags_json).where(model_versions.c.id == vid)).scalar()
        tags = jsonvalue.loads(cur) if cur else []
        w.changed = tag not in tags
        if tag not in tags:
            tags.append(tag)
            conn.execute(
                model_versions.update()
                .where(model_versions.c.id == vid)
                .values(tags_json=jsonvalue.dumps(tags))
            )
        out = _version_dict(conn, vid)
    return out


def training_inputs(
    store: Store, caller: Caller, workspace: str, name: str, version: str
) -> list[dict[str, Any]]:
    """Which dataset (artifact) versions, with their files' sha256, trained this model version
    (those the caller may see: see :mod:`tallymark.service.lineage`)."""
    lookups.allow_visible(caller, "model.get", workspace, _no_model(workspace, name))
    graph = lineage.get_lineage(store, caller, f"model:{workspace}/{name}:{version}", "upstream", 50)
    return [n for n in graph["nodes"] if n["kind"] == "artifact_version"]
