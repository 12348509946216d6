"""What the prediction-log tests share: a store with a registered model version and an endpoint row
for it (the endpoint process itself is the serving tests'), and waiting for a condition."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tallymark.service import experiments, registry
from tallymark.service.caller import local_admin
from tallymark.service.store import Store, now_ms
from tallymark.settings import Settings
from tallymark.store.schema import endpoints, workspaces

ADMIN = local_admin("alice")
WS = "risk"
FEATURES = [f"V{i}" for i in range(1, 31)]


def make_endpoint(store: Store, name: str = "fraud-ep") -> str:
    """A registered model version and an InService endpoint row serving it; returns the name."""
    key = uuid.uuid4().hex
    experiments.create_experiment(
        store, ADMIN, {"key": key, "workspace": WS, "project": "fraud", "name": "t"}
    )
    registry.log_model(store, ADMIN, key, {"name": "fraud-xgb", "remote_uri": "s3://models/xgb"})
    mv = registry.register_model(
        store, ADMIN, WS, "fraud-xgb", {"experiment_key": key, "experiment_model": "fraud-xgb"}
    )
    with store.db.write() as conn:
        ws_id = conn.execute(workspaces.select().where(workspaces.c.name == WS)).first().id
        from sqlalchemy import select

        from tallymark.store.schema import model_versions

        vid = conn.execute(
            select(model_versions.c.id)
            .where(model_versions.c.version == mv["version"])
            .order_by(model_versions.c.id.desc())
            .limit(1)
        ).scalar()
        conn.execute(
            endpoints.insert().values(
                name=name,
                workspace_id=ws_id,
                model_version_id=vid,
                status="InService",
                created_by="alice",
                created_at=now_ms(),
            )
        )
    return name


def endpoint_home(home: Path, name: str = "fraud-ep") -> str:
    from tallymark.service.store import open_store

    store = open_store(Settings(home=home))
    try:
        return make_endpoint(store, name)
    finally:
        store.close()


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll ``cond`` until true; fail (not a timing assert: a generous bound on a hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)
