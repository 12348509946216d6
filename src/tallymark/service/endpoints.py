"""Endpoint rows (one per deployed model version) and trusted model versions.

An endpoint is a row first: ``create_endpoint`` records which registered version it serves
(``@production`` / ``@staging`` resolve to the newest version with that status) with status
``Creating``; the endpoint process reports ``InService`` (url, host, port, pid) or ``Failed``
(the reason) through ``endpoint_status``; ``delete_endpoint`` marks it ``Deleted`` — the process
notices within seconds and exits, wherever it runs. Names are unique across the store (they name
directories and URLs); the name of a Deleted or Failed endpoint of the same workspace may be
deployed again (the row is reused, its history is in the audit log).

A version whose model file would unpickle is refused at create time unless a workspace admin
trusted it (``trust_model``: ``model_version.trust``, with a required comment), so no process is
started for a model that will not load. See docs/serving.md.

Audit actions: ``endpoint.create``, ``endpoint.status``, ``endpoint.delete`` on the object
``endpoint`` ``WORKSPACE/NAME``; ``model_version.trust`` on ``model_version`` ``WORKSPACE/NAME:VERSION``.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from sqlalchemy import Connection, select

from tallymark import jsonvalue
from tallymark.service import guard, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.models import Name, Strict, _prose, validated
from tallymark.service.registry import _registered, _version_dict, resolve_version
from tallymark.service.store import Store, now_ms
from tallymark.serving import formats
from tallymark.store.db import inserted_id
from tallymark.store.schema import (
    endpoints,
    model_versions,
    registered_models,
    trusted_model_versions,
    workspaces,
)

__all__ = [
    "EndpointIn",
    "EndpointStatusIn",
    "TrustIn",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_status",
    "get_endpoint",
    "list_endpoints",
    "trust_model",
]

ENDPOINT_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$"
_NAME_RE = re.compile(ENDPOINT_NAME.removesuffix("$") + r"\Z")
LIVE = ("Creating", "InService")
STATUSES = ("development", "staging", "production", "archived")


def _endpoint_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value[:80]!r}: an endpoint name is 1 to 63 letters, digits or '-', "
            "starting with a letter or digit"
        )
    return value


EndpointName = Annotated[str, AfterValidator(_endpoint_name)]
Prose = Annotated[str, Field(max_length=10_000), AfterValidator(_prose)]


class EndpointIn(Strict):
    model: Name
    version: Annotated[str, Field(min_length=1, max_length=200)]  # a version or @status
    name: EndpointName | None = None
    host: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.:_-]+$")] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] | None = None


class EndpointStatusIn(Strict):
    status: Literal["InService", "Failed"]
    url: Annotated[str, Field(max_length=300, pattern=r"^https?://")] | None = None
    host: Annotated[str, Field(max_length=255)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    pid: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    failure_reason: Annotated[str, Field(max_length=10_000)] | None = None
    machine: Annotated[str, Field(max_length=255)] | None = None  # the host name the process runs on


class TrustIn(Strict):
    comment: Prose = Field(min_length=1)


def _no_endpoint(workspace: str, name: str) -> str:
    return f"no endpoint {name!r} in workspace {workspace!r}"


def _obj(workspace: str, name: str) -> tuple[str, str]:
    return "endpoint", f"{workspace}/{name}"


def _trust(conn: Connection, vid: int) -> dict[str, Any] | None:
    r = conn.execute(
        select(trusted_model_versions).where(trusted_model_versions.c.model_version_id == vid)
    ).first()
    if r is None:
        return None
    return {"trustedBy": r.trusted_by, "trustedAt": r.trusted_at, "comment": r.comment}


def _row_dict(conn: Connection, r: Any) -> dict[str, Any]:
    v = conn.execute(
        select(
            model_versions.c.version,
            model_versions.c.status,
            registered_models.c.name,
            workspaces.c.name.label("ws"),
        )
        .join(registered_models, registered_models.c.id == model_versions.c.registered_model_id)
        .join(workspaces, workspaces.c.id == registered_models.c.workspace_id)
        .where(model_versions.c.id == r.model_version_id)
    ).one()
    trust = _trust(conn, r.model_version_id)
    return {
        "name": r.name,
        "workspace": v.ws,
        "status": r.status,
        "url": r.url,
        "host": r.host,
        "port": r.port,
        "pid": r.pid,
        "failureReason": r.failure_reason,
        "config": jsonvalue.loads(r.config_json) if r.config_json else {},
        "createdBy": r.created_by,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
        "deletedAt": r.deleted_at,
        "model": {
            "workspace": v.ws,
            "name": v.name,
            "version": v.version,
            "status": v.status,
            "trustedBy": trust["trustedBy"] if trust else None,
        },
    }


def _row(conn: Connection, workspace: str, name: str) -> Any:
    r = conn.execute(
        select(endpoints)
        .join(workspaces, workspaces.c.id == endpoints.c.workspace_id)
        .where(endpoints.c.name == name, workspaces.c.name == workspace)
    ).first()
    if r is None:
        raise NotFound(_no_endpoint(workspace, name))
    return r


def _resolve(conn: Connection, workspace: str, model: str, version: str) -> int:
    """A version id: ``version`` itself, or ``@status`` = the newest version with that status."""
    if not version.startswith("@"):
        return resolve_version(conn, workspace, model, version)
    status = version[1:]
    if status not in STATUSES:
        raise Invalid(f"{version!r}: use a version number or @{', @'.join(STATUSES)}")
    rid = _registered(conn, workspace, model)
    vid = conn.execute(
        select(model_versions.c.id)
        .where(model_versions.c.registered_model_id == rid, model_versions.c.status == status)
        .order_by(model_versions.c.created_at.desc(), model_versions.c.id.desc())
        .limit(1)
    ).scalar()
    if vid is None:
        raise NotFound(f"model {model!r} has no version in {status}")
    return int(vid)


def _default_name(conn: Connection, model: str, version: str) -> str:
    base = re.sub(r"[^A-Za-z0-9-]+", "-", f"{model}-{version}").strip("-")[:50] or "endpoint"
    if not base[0].isalnum():
        base = "e" + base
    taken = conn.execute(select(endpoints.c.status).where(endpoints.c.name == base)).scalar()
    return base if taken is None else f"{base}-{secrets.token_hex(3)}"


def create_endpoint(
    store: Store, caller: Caller, workspace: str, data: EndpointIn | dict[str, Any]
) -> dict[str, Any]:
    """Record an endpoint for a model version (status Creating); the caller then starts its process."""
    spec = validated(EndpointIn, data)
    lookups.allow_visible(
        caller, "endpoint.create", workspace, f"no registered model {spec.model!r} in workspace {workspace!r}"
    )
    with guard.write(
        store,
        caller,
        "endpoint.create",
        workspace=workspace,
        object=_obj(workspace, spec.name or "?"),
        payload={},
    ) as w:
        conn = w.conn
        vid = _resolve(conn, workspace, spec.model, spec.version)
        details = _version_dict(conn, vid)
        try:
            mf = formats.choose(details["metadata"], details["files"])
        except formats.ModelFormatError as exc:
            raise Invalid(
                f"model {spec.model!r} version {details['version']} cannot be served: {exc}"
            ) from None
        if mf.unpickles and _trust(conn, vid) is None:
            raise Invalid(formats.refusal(workspace, spec.model, details["version"], mf))
        name = spec.name or _default_name(conn, spec.model, details["version"])
        ws_id = conn.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).scalar()
        old = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
        values = {
            "workspace_id": ws_id,
            "model_version_id": vid,
            "status": "Creating",
            "url": None,
            "host": spec.host,
            "port": spec.port,
            "pid": None,
            "config_json": jsonvalue.dumps(
                {"requestedPort": spec.port, "modelFile": mf.logical_path, "sha256": mf.sha256}
            ),
            "failure_reason": None,
            "created_by": caller.name,
            "created_at": now_ms(),
            "updated_at": None,
            "deleted_at": None,
        }
        if old is not None:
            if old.workspace_id != ws_id or old.status in LIVE:
                where = "" if old.workspace_id != ws_id else f" ({old.status}; delete it first)"
                raise Conflict(f"endpoint name {name!r} is taken{where}")
            conn.execute(endpoints.update().where(endpoints.c.id == old.id).values(**values))
            eid = old.id
        else:
            eid = inserted_id(conn.execute(endpoints.insert().values(name=name, **values)))
        w.object = _obj(workspace, name)
        w.payload = {"model": spec.model, "version": details["version"], "host": spec.host, "port": spec.port}
        row = conn.execute(select(endpoints).where(endpoints.c.id == eid)).one()
        return _row_dict(conn, row)


def endpoint_status(
    store: Store, caller: Caller, workspace: str, name: str, data: EndpointStatusIn | dict[str, Any]
) -> dict[str, Any]:
    """The endpoint process (or its starter) reports InService with its address, or Failed."""
    spec = validated(EndpointStatusIn, data)
    lookups.allow_visible(caller, "endpoint.status", workspace, _no_endpoint(workspace, name))
    with guard.write(
        store, caller, "endpoint.status", workspace=workspace, object=_obj(workspace, name), payload={}
    ) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        if r.status == "Deleted":
            raise Conflict(f"endpoint {name!r} is deleted")
        values: dict[str, Any] = {"status": spec.status, "updated_at": now_ms()}
        if spec.status == "InService":
            if spec.url is None or spec.port is None or spec.pid is None:
                raise Invalid("InService needs url, port and pid")
            values.update(
                url=spec.url, host=spec.host or r.host, port=spec.port, pid=spec.pid, failure_reason=None
            )
            config = jsonvalue.loads(r.config_json) if r.config_json else {}
            values["config_json"] = jsonvalue.dumps({**config, "machine": spec.machine})
        else:
            values.update(failure_reason=(spec.failure_reason or "failed (no reason given)"), url=None)
            if spec.pid is not None:
                values["pid"] = spec.pid
        conn.execute(endpoints.update().where(endpoints.c.id == r.id).values(**values))
        w.payload = {k: v for k, v in spec.model_dump().items() if v is not None}
        return _row_dict(conn, conn.execute(select(endpoints).where(endpoints.c.id == r.id)).one())


def delete_endpoint(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    """Mark an endpoint Deleted (its process exits when it notices); deleting twice changes nothing."""
    lookups.allow_visible(caller, "endpoint.delete", workspace, _no_endpoint(workspace, name))
    with guard.write(
        store, caller, "endpoint.delete", workspace=workspace, object=_obj(workspace, name), payload={}
    ) as w:
        conn = w.conn
        r = _row(conn, workspace, name)
        w.changed = r.status != "Deleted"
        if w.changed:
            at = now_ms()
            conn.execute(
                endpoints.update()
                .where(endpoints.c.id == r.id)
                .values(status="Deleted", deleted_at=at, updated_at=at)
            )
            w.payload = {"from": r.status, "pid": r.pid, "host": r.host}
        return _row_dict(conn, conn.execute(select(endpoints).where(endpoints.c.id == r.id)).one())


def get_endpoint(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    lookups.allow_visible(caller, "endpoint.get", workspace, _no_endpoint(workspace, name))
    with store.db.read() as conn:
        return _row_dict(conn, _row(conn, workspace, name))


def list_endpoints(
    store: Store, caller: Caller, workspace: str, include_deleted: bool = False
) -> list[dict[str, Any]]:
    lookups.allow_visible(caller, "endpoint.list", workspace, f"no workspace {workspace!r}")
    with store.db.read() as conn:
        q = (
            select(endpoints)
            .join(workspaces, workspaces.c.id == endpoints.c.workspace_id)
            .where(workspaces.c.name == workspace)
            .order_by(endpoints.c.created_at.desc(), endpoints.c.id.desc())
        )
        if not include_deleted:
            q = q.where(endpoints.c.status != "Deleted")
        return [_row_dict(conn, r) for r in conn.execute(q)]


def trust_model(
    store: Store, caller: Caller, workspace: str, name: str, version: str, data: TrustIn | dict[str, Any]
) -> dict[str, Any]:
    """Allow a version whose model file unpickles to be served (workspace admins; audited)."""
    spec = validated(TrustIn, data)
    lookups.allow_visible(
        caller, "model.trust", workspace, f"no registered model {name!r} in workspace {workspace!r}"
    )
    with guard.write(
        store,
        caller,
        "model.trust",
        workspace=workspace,
        object=("model_version", f"{workspace}/{name}:{version}"),
        payload={"comment": spec.comment},
    ) as w:
        conn = w.conn
        vid = resolve_version(conn, workspace, name, version)
        have = _trust(conn, vid)
        w.changed = have is None
        if have is None:
            details = _version_dict(conn, vid)
            try:
                mf: formats.ModelFile | None = formats.choose(details["metadata"], details["files"])
            except formats.ModelFormatError:
                mf = None
            w.payload = {
                "comment": spec.comment,
                "file": mf.logical_path if mf else None,
                "sha256": mf.sha256 if mf else None,
            }
            conn.execute(
                trusted_model_versions.insert().values(
                    model_version_id=vid, trusted_by=caller.name, trusted_at=now_ms(), comment=spec.comment
                )
            )
        out = _trust(conn, vid)
        assert out is not None
        return {"workspace": workspace, "name": name, "version": version, **out}
