"""Artifacts: named, versioned collections of files (stored blobs or remote references).

Logging an existing name creates the next major version (1.0.0, 2.0.0, …) unless an explicit, new
version is given; an alias names exactly one version of an artifact and moves when reused.

Every operation takes the :class:`~tallymark.service.caller.Caller` second. Reads need a role in the
artifact's workspace; an artifact of a workspace where the caller has none answers the same 404 as
one that does not exist. Writes run in :func:`tallymark.service.guard.write` (check, change and one
audit entry on ``artifact_version`` ``WORKSPACE/NAME:VERSION``, in one transaction); a write that
changes nothing (closing a closed version, consuming twice) appends no entry. A version produced or
consumed by an experiment also needs a member's role in that experiment's workspace.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select

from tallymark import jsonvalue
from tallymark.service import guard, lineage, lookups
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.experiments import _workspace_id, experiment_row, require_running
from tallymark.service.files import check_files, insert_files, owned_blob, read_files, require_visible
from tallymark.service.models import SEMVER_RE, ArtifactVersionIn, validated
from tallymark.service.store import Store, now_ms
from tallymark.service.versions import allocate
from tallymark.store.db import inserted_id
from tallymark.store.schema import (
    artifact_aliases,
    artifact_versions,
    artifacts,
    experiments,
    files,
)


def _missing(workspace: str, name: str) -> str:
    return f"no artifact {name!r} in workspace {workspace!r}"


def _ref(workspace: str, name: str, version: str) -> tuple[str, str]:
    """The audit object of a version: ``("artifact_version", "WORKSPACE/NAME:VERSION")``."""
    return "artifact_version", f"{workspace}/{name}:{version}"


def _experiment_may(caller: Caller, op: str, key: str | None, store: Store) -> None:
    """A member's role (for ``op``) in the workspace of experiment ``key``, which a write records."""
    if key is not None:
        ws = lookups.experiment_workspace(store, key)
        lookups.allow_visible(caller, op, ws, f"no experiment with key {key!r}")


def log_artifact_version(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    data: ArtifactVersionIn | dict[str, Any],
    open_for_files: bool = False,
) -> dict[str, Any]:
    """Create the next (or the given) version of an artifact, its files, aliases and lineage.

    The version is closed (its files and metadata final) at once, unless ``open_for_files``: then
    its producing experiment adds the files afterwards (Comet's upload steps) until it is closed.
    """
    from tallymark.service.models import (
        ScopeName,  # noqa: F401 - name rules live there
        _scope_name,
    )

    try:
        _scope_name(workspace)
        _scope_name(name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    lookups.allow_visible(caller, "artifact.log", workspace, _missing(workspace, name))
    spec = validated(ArtifactVersionIn, data)
    _experiment_may(caller, "artifact.log", spec.experiment_key, store)
    rows = check_files(store, spec.files)
    require_visible(store, caller, rows)
    meta = None if spec.metadata is None else jsonvalue.dumps(spec.metadata)
    if meta is not None and len(meta) > store.settings.max_value_bytes:
        raise Invalid("the artifact's metadata is larger than the value limit")
    now = now_ms()
    actor = caller.name
    with guard.write(
        store,
        caller,
        "artifact.log",
        workspace=workspace,
        object=("artifact_version", f"{workspace}/{name}"),
        payload=spec.model_dump(mode="json"),
    ) as w:
        conn = w.conn
        exp_id = None
        if spec.experiment_key is not None:
            producer = experiment_row(conn, spec.experiment_key)
            require_running(producer)
            exp_id = producer.id
        elif open_for_files:
            raise Invalid("a version whose files follow needs the experiment that uploads them")
        ws = _workspace_id(conn, workspace, create=True)
        art = conn.execute(
            select(artifacts).where(artifacts.c.workspace_id == ws, artifacts.c.name == name)
        ).first()
        if art is None:
            res = conn.execute(
                artifacts.insert().values(
                    workspace_id=ws,
                    name=name,
                    artifact_type=spec.artifact_type,
                    created_at=now,
                    created_by=actor,
                )
            )
            aid = inserted_id(res)
        else:
            aid = art.id
            if art.artifact_type != spec.artifact_type:
                raise Conflict(
                    f"artifact {name!r} is of type {art.artifact_type!r}, not {spec.artifact_type!r}"
                )
            if conn.dialect.name == "postgresql":  # serialize version numbering per artifact
                conn.execute(select(artifacts.c.id).where(artifacts.c.id == aid).with_for_update())
        version, major, minor, patch = allocate(
            conn, artifact_versions, artifact_versions.c.artifact_id, aid, spec.version, f"artifact {name!r}"
        )
        res = conn.execute(
            artifact_versions.insert().values(
                artifact_id=aid,
                version=version,
                major=major,
                minor=minor,
                patch=patch,
                metadata_json=meta,
                tags_json=jsonvalue.dumps(list(dict.fromkeys(spec.version_tags))),
                source_experiment_id=exp_id,
                size=sum(r["size"] or 0 for r in rows),
                created_at=now,
                created_by=actor,
                closed_at=None if open_for_files else now,
            )
        )
        vid = inserted_id(res)
        insert_files(conn, "artifact_version", vid, rows)
        for alias in dict.fromkeys(spec.aliases):
            conn.execute(
                delete(artifact_aliases).where(
                    artifact_aliases.c.artifact_id == aid, artifact_aliases.c.alias == alias
                )
            )
            conn.execute(artifact_aliases.insert().values(artifact_id=aid, alias=alias, version_id=vid))
        if exp_id is not None:
            lineage.add_edge(conn, "experiment", exp_id, "artifact_version", vid, "produced")
        w.object = _ref(workspace, name, version)
        out = version_dict(conn, vid)
    return out


def _resolve(conn: Connection, workspace: str, name: str, version_or_alias: str | None) -> int:
    ws = _workspace_id(conn, workspace, create=False)
    art = (
        None
        if ws is None
        else conn.execute(
            select(artifacts.c.id).where(artifacts.c.workspace_id == ws, artifacts.c.name == name)
        ).first()
    )
    if art is None:
        raise NotFound(f"no artifact {name!r} in workspace {workspace!r}")
    live = artifact_versions.c.deleted_at.is_(None)
    if version_or_alias is None:
        row = conn.execute(
            select(artifact_versions.c.id)
            .where(artifact_versions.c.artifact_id == art.id, live)
            .order_by(
                artifact_versions.c.major.desc(),
                artifact_versions.c.minor.desc(),
                artifact_versions.c.patch.desc(),
            )
            .limit(1)
        ).first()
    elif SEMVER_RE.match(version_or_alias):
        row = conn.execute(
            select(artifact_versions.c.id).where(
                artifact_versions.c.artifact_id == art.id,
                artifact_versions.c.version == version_or_alias,
                live,
            )
        ).first()
    else:
        row = conn.execute(
            select(artifact_aliases.c.version_id).where(
                artifact_aliases.c.artifact_id == art.id, artifact_aliases.c.alias == version_or_alias
            )
        ).first()
    if row is None:
        raise NotFound(f"artifact {name!r} has no version or alias {version_or_alias!r}")
    return row[0]


def version_dict(conn: Connection, vid: int, with_files: bool = True) -> dict[str, Any]:
    v = conn.execute(
        select(artifact_versions, artifacts.c.name, artifacts.c.artifact_type, artifacts.c.workspace_id)
        .join(artifacts, artifacts.c.id == artifact_versions.c.artifact_id)
        .where(artifact_versions.c.id == vid)
    ).one()
    from tallymark.store.schema import workspaces

    ws = conn.execute(select(workspaces.c.name).where(workspaces.c.id == v.workspace_id)).scalar()
    aliases = list(
        conn.execute(
            select(artifact_aliases.c.alias)
            .where(artifact_aliases.c.version_id == vid)
            .order_by(artifact_aliases.c.alias)
        ).scalars()
    )
    src = None
    if v.source_experiment_id is not None:
        src = conn.execute(
            select(experiments.c.key).where(experiments.c.id == v.source_experiment_id)
        ).scalar()
    out = {
        "id": vid,
        "workspace": ws,
        "name": v.name,
        "artifactType": v.artifact_type,
        "version": v.version,
        "aliases": aliases,
        "versionTags": jsonvalue.loads(v.tags_json) if v.tags_json else [],
        "metadata": None if v.metadata_json is None else jsonvalue.loads(v.metadata_json),
        "sourceExperimentKey": src,
        "size": v.size,
        "createdAt": v.created_at,
        "createdBy": v.created_by,
        "deleted": v.deleted_at is not None,
    }
    if with_files:
        out["files"] = read_files(conn, "artifact_version", vid)
    return out


def get_artifact_version(
    store: Store, caller: Caller, workspace: str, name: str, version_or_alias: str | None = None
) -> dict[str, Any]:
    """One version (latest when none is named). Reads only; see :func:`consume_artifact_version`."""
    lookups.allow_visible(caller, "artifact.get", workspace, _missing(workspace, name))
    with store.db.read() as conn:
        return version_dict(conn, _resolve(conn, workspace, name, version_or_alias))


def artifact_file(
    store: Store, caller: Caller, workspace: str, name: str, version: str, sha256: str
) -> tuple[int, Any]:
    """(size, bytes) of the file ``sha256`` of a version: the caller reads the version, so its bytes."""
    v = get_artifact_version(store, caller, workspace, name, version)
    return owned_blob(store, sha256, v["files"], f"artifact {name!r} {v['version']}")


def consume_artifact_version(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    version_or_alias: str | None,
    consumer_key: str,
) -> dict[str, Any]:
    """Record that the running experiment ``consumer_key`` uses this version ("consumed" lineage).

    Needs a role in the artifact's workspace (to read it) and a member's in the experiment's (the
    write, recorded there); consuming the same version again changes nothing."""
    lookups.allow_visible(caller, "artifact.get", workspace, _missing(workspace, name))
    consumer_ws = lookups.experiment_workspace(store, consumer_key)
    lookups.allow_visible(caller, "artifact.consume", consumer_ws, f"no experiment with key {consumer_key!r}")
    with guard.write(
        store,
        caller,
        "artifact.consume",
        workspace=consumer_ws,
        object=("artifact_version", f"{workspace}/{name}"),
        payload={"experiment_key": consumer_key, "version_or_alias": version_or_alias},
    ) as w:
        conn = w.conn
        vid = _resolve(conn, workspace, name, version_or_alias)
        consumer = experiment_row(conn, consumer_key)
        require_running(consumer)
        w.changed = not lineage.has_edge(conn, "artifact_version", vid, "experiment", consumer.id, "consumed")
        lineage.add_edge(conn, "artifact_version", vid, "experiment", consumer.id, "consumed")
        out = version_dict(conn, vid)
        w.object = _ref(workspace, name, out["version"])
    return out


def own_version(
    conn: Connection, workspace: str, name: str, version: str, experiment_key: str
) -> tuple[int, Any, Any]:
    """(id, version row, experiment row) of a version, refused unless ``experiment_key`` made it:
    only the producing experiment adds files to a version, closes it or withdraws it."""
    vid = _resolve(conn, workspace, name, version)
    v = conn.execute(select(artifact_versions).where(artifact_versions.c.id == vid)).one()
    exp = experiment_row(conn, experiment_key, for_update=True)
    if v.source_experiment_id != exp.id:
        raise Conflict(
            f"artifact {name!r} {version} was not created by experiment {experiment_key}; its files are fixed"
        )
    return vid, v, exp


def close_artifact_version(
    store: Store, caller: Caller, workspace: str, name: str, version: str, experiment_key: str
) -> dict[str, Any]:
    """The producing experiment says all files arrived (Comet's ``CLOSED``); closing twice is fine."""
    lookups.allow_visible(caller, "artifact.close", workspace, _missing(workspace, name))
    _experiment_may(caller, "artifact.close", experiment_key, store)
    with guard.write(
        store,
        caller,
        "artifact.close",
        workspace=workspace,
        object=_ref(workspace, name, version),
        payload={"experiment_key": experiment_key},
    ) as w:
        conn = w.conn
        vid, v, _ = own_version(conn, workspace, name, version, experiment_key)
        w.changed = v.closed_at is None
        if v.closed_at is None:
            conn.execute(
                artifact_versions.update().where(artifact_versions.c.id == vid).values(closed_at=now_ms())
            )
        out = version_dict(conn, vid)
    return out


def abandon_artifact_version(
    store: Store,
    caller: Caller,
    workspace: str,
    name: str,
    version: str,
    experiment_key: str,
    session: str | None = None,
) -> dict[str, Any]:
    """The producing experiment's upload of a version failed (Comet's ``ERROR``): the partial version
    goes, so nobody consumes it. Only the experiment still uploading it may do this: a version made
    elsewhere, a closed one, or one with consumers is refused."""
    lookups.allow_visible(caller, "artifact.abandon", workspace, _missing(workspace, name))
    _experiment_may(caller, "artifact.abandon", experiment_key, store)
    with guard.write(
        store,
        caller,
        "artifact.abandon",
        workspace=workspace,
        object=_ref(workspace, name, version),
        payload={"experiment_key": experiment_key},
    ) as w:
        conn = w.conn
        vid, v, exp = own_version(conn, workspace, name, version, experiment_key)
        if v.closed_at is not None:
            raise Conflict(f"artifact {name!r} {version} is closed; its files are final")
        require_running(exp, session)
        _refuse_if_consumed(conn, caller, vid, name, version)
        _delete_version(conn, vid)
    return {"deleted": f"{name}:{version}"}


def _refuse_if_consumed(conn: Connection, caller: Caller, vid: int, name: str, version: str) -> None:
    consumers = lineage.neighbours(conn, "artifact_version", vid, "downstream")
    if consumers:
        # Named only where the caller may look; the others are counted (the refusal must say why).
        shown = [c for c in consumers if lookups.sees(caller, c.get("workspace"))]
        who = ", ".join(str(c.get("label") or c.get("ref")) for c in shown[:5])
        hidden = len(consumers) - len(shown)
        if hidden:
            who = f"{who}; {hidden} in other workspaces" if who else f"{hidden} in other workspaces"
        raise Conflict(
            f"artifact {name!r} {version} is an input of {len(consumers)} experiment(s) ({who}); "
            "it is kept for their lineage"
        )


def _delete_version(conn: Connection, vid: int) -> None:
    conn.execute(delete(artifact_aliases).where(artifact_aliases.c.version_id == vid))
    conn.execute(delete(files).where(files.c.owner_kind == "artifact_version", files.c.owner_id == vid))
    conn.execute(artifact_versions.update().where(artifact_versions.c.id == vid).values(deleted_at=now_ms()))


def list_artifacts(store: Store, caller: Caller, workspace: str) -> list[dict[str, Any]]:
    lookups.allow_visible(caller, "artifact.list", workspace, f"no workspace named {workspace!r}")
    with store.db.read() as conn:
        ws = _workspace_id(conn, workspace, create=False)
        if ws is None:
            raise NotFound(f"no workspace named {workspace!r}")
        counts = (
            select(
                artifact_versions.c.artifact_id,
                func.count().label("n"),
                func.max(artifact_versions.c.created_at).label("last"),
            )
            .where(artifact_versions.c.deleted_at.is_(None))
            .group_by(artifact_versions.c.artifact_id)
            .subquery()
        )
        rows = conn.execute(
            select(artifacts, counts.c.n, counts.c.last)
            .outerjoin(counts, counts.c.artifact_id == artifacts.c.id)
            .where(artifacts.c.workspace_id == ws)
            .order_by(artifacts.c.name)
        ).all()
    return [
        {
            "name": r.name,
            "artifactType": r.artifact_type,
            "versions": r.n or 0,
            "lastCreatedAt": r.last,
            "createdBy": r.created_by,
        }
        for r in rows
    ]


def list_versions(store: Store, caller: Caller, workspace: str, name: str) -> list[dict[str, Any]]:
    """Every live version, oldest first, with the experiments (that the caller may see) that consumed it."""
    lookups.allow_visible(caller, "artifact.versions", workspace, _missing(workspace, name))
    with store.db.read() as conn:
        vid = _resolve(conn, workspace, name, None)
        aid = conn.execute(
            select(artifact_versions.c.artifact_id).where(artifact_versions.c.id == vid)
        ).scalar()
        ids = conn.execute(
            select(artifact_versions.c.id)
            .where(artifact_versions.c.artifact_id == aid, artifact_versions.c.deleted_at.is_(None))
            .order_by(artifact_versions.c.major, artifact_versions.c.minor, artifact_versions.c.patch)
        ).scalars()
        out = []
        for i in list(ids):
            d = version_dict(conn, i)
            d["consumers"] = [
                c
                for c in lineage.neighbours(conn, "artifact_version", i, "downstream")
                if lookups.sees(caller, c.get("workspace"))
            ]
            out.append(d)
        return out


def delete_artifact_version(
    store: Store, caller: Caller, workspace: str, name: str, version: str
) -> dict[str, Any]:
    """Delete a version: its files and aliases go; blobs stay until `tallymark gc` finds them unused.

    Refused while an experiment that consumed it is kept: the lineage of what was trained on it
    (a production model's training data and its hashes, above all) must survive.
    """
    lookups.allow_visible(caller, "artifact.delete", workspace, _missing(workspace, name))
    with guard.write(
        store, caller, "artifact.delete", workspace=workspace, object=_ref(workspace, name, version)
    ) as w:
        conn = w.conn
        vid = _resolve(conn, workspace, name, version)
        _refuse_if_consumed(conn, caller, vid, name, version)
        _delete_version(conn, vid)
    return {"deleted": f"{name}:{version}"}
