"""Deleting experiments and collecting unreferenced blobs.

A blob is referenced while any experiment asset or any file of an artifact version or logged model
names its sha256. Deleting an experiment or an artifact version never deletes blobs directly —
another experiment may hold the same bytes — ``tallymark gc`` removes what nothing references.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from tallymark.service import guard, lineage
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict
from tallymark.service.experiments import experiment_row, visible_workspace
from tallymark.service.store import Store
from tallymark.store.schema import (
    artifact_versions,
    assets,
    batches,
    experiment_models,
    experiments,
    files,
    items,
    lineage_edges,
    metric_chunks,
    metric_summaries,
    model_versions,
    others,
    params,
    tags,
)


def delete_experiment(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    """Delete an experiment and everything it logged (refused while a registered model version
    points at it: archive the version's audit trail is what regulators ask for). Needs a workspace
    admin; audited as ``experiment.delete``."""
    ws = visible_workspace(store, caller, key, "experiment.delete")
    with guard.write(
        store, caller, "experiment.delete", workspace=ws, object=("experiment", key), payload={"key": key}
    ) as w:
        conn = w.conn
        eid = experiment_row(conn, key, for_update=True).id
        model_ids = list(
            conn.execute(
                select(experiment_models.c.id).where(experiment_models.c.experiment_id == eid)
            ).scalars()
        )
        if (
            model_ids
            and conn.execute(
                select(model_versions.c.id).where(model_versions.c.experiment_model_id.in_(model_ids))
            ).first()
        ):
            raise Conflict(f"experiment {key} has registered model versions; it is kept for their lineage")
        produced = conn.execute(
            select(artifact_versions.c.id).where(
                artifact_versions.c.source_experiment_id == eid, artifact_versions.c.deleted_at.is_(None)
            )
        ).scalars()
        for vid in list(produced):
            consumers = lineage.neighbours(conn, "artifact_version", vid, "downstream")
            if any(c["ref"] != f"experiment:{key}" for c in consumers):
                raise Conflict(
                    f"experiment {key} produced {lineage.describe(conn, 'artifact_version', vid)['label']}, "
                    f"an input of {consumers[0]['label']}; it is kept for that lineage"
                )
        conn.execute(delete(files).where(files.c.owner_kind == "model", files.c.owner_id.in_(model_ids)))
        for table in (
            experiment_models,
            assets,
            items,
            metric_chunks,
            metric_summaries,
            params,
            others,
            tags,
            batches,
        ):
            conn.execute(delete(table).where(table.c.experiment_id == eid))
        conn.execute(
            delete(lineage_edges).where(
                ((lineage_edges.c.src_kind == "experiment") & (lineage_edges.c.src_id == eid))
                | ((lineage_edges.c.dst_kind == "experiment") & (lineage_edges.c.dst_id == eid))
            )
        )
        conn.execute(
            artifact_versions.update()
            .where(artifact_versions.c.source_experiment_id == eid)
            .values(source_experiment_id=None)
        )
        conn.execute(delete(experiments).where(experiments.c.id == eid))
    return {"deleted": key}


def referenced_blobs(store: Store) -> set[str]:
    with store.db.read() as conn:
        shas = set(conn.execute(select(assets.c.sha256).distinct()).scalars())
        shas |= {s for s in conn.execute(select(files.c.sha256).distinct()).scalars() if s}
    return shas


def collect_garbage(
    store: Store, caller: Caller, dry_run: bool = False, grace_seconds: float = 3600.0
) -> dict[str, Any]:
    """Delete blobs nothing references. Returns counts and bytes freed (or that would be).

    Blobs younger than ``grace_seconds`` are kept: a client uploads blobs first and records the
    artifact or model that references them right after. A run that removed blobs is one audit
    entry (``blob.gc``, the removed hashes as its payload); a dry run writes nothing.
    """
    import time

    guard.allow(caller, "blob.gc")
    keep = referenced_blobs(store)
    removed, freed = [], 0
    modified_at = getattr(store.blobs, "modified_at", None)
    for sha in list(store.blobs.iter_shas()):
        if sha in keep:
            continue
        if modified_at is not None and time.time() - modified_at(sha) < grace_seconds:
            continue
        size = store.blobs.size(sha)
        # Re-check under the write lock: a blob referenced since the scan must stay.
        with store.db.write() as conn:
            again = (
                conn.execute(select(assets.c.id).where(assets.c.sha256 == sha).limit(1)).first()
                or conn.execute(select(files.c.id).where(files.c.sha256 == sha).limit(1)).first()
            )
            if again is None and not dry_run:
                store.blobs.delete(sha)
        if again is None:
            removed.append(sha)
            freed += size
    if removed and not dry_run:
        with guard.write(
            store,
            caller,
            "blob.gc",
            workspace=None,
            object=("blob", f"{len(removed)} blobs"),
            payload={"removed": removed, "bytes": freed},
        ):
            pass
    return {"removed": len(removed), "bytes": freed, "kept": len(keep), "dry_run": dry_run, "blobs": removed}
