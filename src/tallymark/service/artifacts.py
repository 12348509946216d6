"""Artifacts: named, versioned collections of files (stored blobs or remote references).

Logging an existing name creates the next major version (1.0.0, 2.0.0, …) unless an explicit, new
version is given; an alias names exactly one version of an artifact and moves when reused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select

from tallymark import jsonvalue
from tallymark.service import lineage
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.experiments import _workspace_id, experiment_row, require_running
from tallymark.service.files import check_files, insert_files, read_files
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


def log_artifact_version(
    store: Store,
    workspace: str,
    name: str,
    data: ArtifactVersionIn | dict[str, Any],
    actor: str,
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
    spec = validated(ArtifactVersionIn, data)
    rows = check_files(store, spec.files)
    meta = None if spec.metadata is None else jsonvalue.dumps(spec.metadata)
    if meta is not None and len(meta) > store.settings.max_value_bytes:
        raise Invalid("the artifact's metadata is larger than the value limit")
    now = now_ms()
    with store.db.write() as conn:
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
        return version_dict(conn, vid)


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
    store: Store, workspace: str, name: str, version_or_alias: str | None = None
) -> dict[str, Any]:
    """One version (latest when none is named). Reads only; see :func:`consume_artifact_version`."""
    with store.db.read() as conn:
        return version_dict(conn, _resolve(conn, workspace, name, version_or_alias))


def consume_artifact_version(
    store: Store, workspace: str, name: str, version_or_alias: str | None, consumer_key: str
) -> dict[str, Any]:
    """Record that the running experiment ``consumer_key`` uses this version ("consumed" lineage)."""
    with store.db.write() as conn:
        vid = _resolve(conn, workspace, name, version_or_alias)
        consumer = experiment_row(conn, consumer_key)
        require_running(consumer)
        lineage.add_edge(conn, "artifact_version", vid, "experiment", consumer.id, "consumed")
        return version_dict(conn, vid)


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
    store: Store, workspace: str, name: str, version: str, experiment_key: str
) -> dict[str, Any]:
    """The producing experiment says all files arrived (Comet's ``CLOSED``); closing twice is fine."""
    with store.db.write() as conn:
        vid, v, _ = own_version(conn, workspace, name, version, experiment_key)
        if v.closed_at is None:
            conn.execute(
                artifact_versions.update().where(artifact_versions.c.id == vid).values(closed_at=now_ms())
            )
        return version_dict(conn, vid)


def abandon_artifact_version(
    store: Store, workspace: str, name: str, version: str, experiment_key: str, session: str | None = None
) -> dict[str, Any]:
    """The producing experiment's upload of a version failed (Comet's ``ERROR``): the partial version
    goes, so nobody consumes it. Only the experiment still uploading it may do this: a version made
    elsewhere, a closed one, or one with consumers is refused."""
    with store.db.write() as conn:
        vid, v, exp = own_version(conn, workspace, name, version, experiment_key)
        if v.closed_at is not None:
            raise Conflict(f"artifact {name!r} {version} is closed; its files are final")
        require_running(exp, session)
        _refuse_if_consumed(conn, vid, name, version)
        _delete_version(conn, vid)
        return {"deleted": f"{name}:{version}"}


def _refuse_if_consumed(conn: Connection, vid: int, name: str, version: str) -> None:
    consumers = lineage.neighbours(conn, "artifact_version", vid, "downstream")
    if consumers:
        who = ", ".join(c.get("label") or c.get("ref") or str(c.get("id")) for c in consumers[:5])
        raise Conflict(
            f"artifact {name!r} {version} is an input of {len(consumers)} experiment(s) ({who}); "
            "it is kept for their lineage"
        )


def _delete_version(conn: Connection, vid: int) -> None:
    conn.execute(delete(artifact_aliases).where(artifact_aliases.c.version_id == vid))
    conn.execute(delete(files).where(files.c.owner_kind == "artifact_version", files.c.owner_id == vid))
    conn.execute(artifact_versions.update().where(artifact_versions.c.id == vid).values(deleted_at=now_ms()))


def list_artifacts(store: Store, workspace: str) -> list[dict[str, Any]]:
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


def list_versions(store: Store, workspace: str, name: str) -> list[dict[str, Any]]:
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
            d["consumers"] = lineage.neighbours(conn, "artifact_version", i, "downstream")
            out.append(d)
        return out


def delete_artifact_version(store: Store, workspace: str, name: str, version: str) -> dict[str, Any]:
    """Delete a version: its files and aliases go; blobs stay until `tallymark gc` finds them unused.

    Refused while an experiment that consumed it is kept: the lineage of what was trained on it
    (a production model's training data and its hashes, above all) must survive.
    """
    with store.db.write() as conn:
        vid = _resolve(conn, workspace, name, version)
        _refuse_if_consumed(conn, vid, name, version)
        _delete_version(conn, vid)
        return {"deleted": f"{name}:{version}"}
