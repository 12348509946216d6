"""The audit half of the demo: dataset versions, models in the registry, four-eyes promotion.

- A ``fraud-data-prep`` experiment logs the raw transactions as ``fraud-dataset`` (alias ``raw``:
  the file, hashed, plus a reference to where the public original lives), consumes it, and logs the
  prepared splits as the next version (alias ``preprocessed``).
- Each training experiment consumes ``preprocessed``, logs its booster with ``log_model`` and
  registers it as a version of ``fraud-xgb``.
- The better model is requested for production by the data scientist and approved by a second
  identity (user ``risk-officer``, its own client settings): the registry refuses a self-approval.
  Logged to a server with an API key, the request stays pending for a real approver.

Files are written once into ``HOME/demo-cache`` and are content-addressed in the blob store, so a
second demo run uploads nothing new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATASET = "fraud-dataset"
MODEL = "fraud-xgb"
KAGGLE_URI = "https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud/creditcard.csv"
APPROVER = "risk-officer"


def cache_dir() -> Path:
    from tallymark.settings import ClientSettings

    path = ClientSettings.from_env().home_path / "demo-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _parquet(frame: Any, path: Path) -> Path:
    if not path.exists():
        tmp = path.with_suffix(".part")
        frame.to_parquet(tmp, index=False, compression="zstd")
        tmp.replace(path)
    return path


def version_datasets(
    exp: Any, frame: Any, prepared: Any, source: str, data_path: str | None
) -> dict[str, Any]:
    """Log raw and preprocessed versions of the dataset from the preparation experiment."""
    import pandas as pd

    import tallymark

    tag = source.replace(":", "-").replace("/", "_").replace("(", "-").replace(")", "").replace(", ", "-")
    cache = cache_dir()
    raw = tallymark.Artifact(
        DATASET,
        artifact_type="dataset",
        aliases=["raw"],
        metadata={
            "rows": len(frame),
            "frauds": int(frame["Class"].sum()),
            "source": source,
            "schema": "Time, V1-V28, Amount, Class",
        },
    )
    if data_path is not None:
        raw.add(data_path, logical_path="creditcard.csv")
    else:
        raw.add(_parquet(frame, cache / f"raw-{tag}.parquet"), logical_path="creditcard.parquet")
    raw.add_remote(
        KAGGLE_URI,
        logical_path="original/creditcard.csv",
        metadata={"note": "the public file this schema comes from"},
    )
    logged_raw = exp.log_artifact(raw)
    exp.get_artifact(DATASET, logged_raw.version)  # the preparation step consumes the raw version

    folder = cache / f"prepared-{tag}"
    folder.mkdir(exist_ok=True)
    for split in ("train", "validation", "test"):
        X = getattr(prepared, f"X_{split}")
        y = getattr(prepared, f"y_{split}")
        _parquet(
            pd.concat([X.reset_index(drop=True), pd.Series(y, name="Class")], axis=1),
            folder / f"{split}.parquet",
        )
    pre = tallymark.Artifact(
        DATASET,
        artifact_type="dataset",
        aliases=["preprocessed"],
        metadata={**prepared.summary(), "split": "70/15/15 stratified", "derived_from": logged_raw.version},
    )
    pre.add(folder, logical_path="splits")
    logged_pre = exp.log_artifact(pre)
    return {"raw": logged_raw, "preprocessed": logged_pre}


def log_and_register(exp: Any, booster: Any, spec_name: str, preprocessed_version: str) -> dict[str, Any]:
    """Consume the prepared data, log the booster, register it as the next ``fraud-xgb`` version."""
    exp.get_artifact(DATASET, preprocessed_version)
    folder = cache_dir() / "models"
    folder.mkdir(exist_ok=True)
    path = folder / f"{exp.get_key()}.ubj"
    booster.save_model(path)
    exp.log_model(MODEL, path, metadata={"framework": "xgboost", "format": "ubj", "trained_as": spec_name})
    return exp.register_model(
        MODEL, description=f"{spec_name}: credit-card fraud detection", tags=[spec_name]
    )


def promote(workspace: str, version: str, comment: str) -> dict[str, Any]:
    """Request production for ``version`` as the current user; approve it as :data:`APPROVER`.

    Two people, two clients: each ``API`` carries its own identity (settings), nothing global.
    With an API key (a server with authentication), identity comes from the key alone, so the demo
    only requests: an approver of the workspace approves it with their own key (``decision`` None).
    """
    import tallymark
    from tallymark.settings import ClientSettings

    me = ClientSettings.from_env()
    if me.api_key:
        api = tallymark.API(settings=me)
        try:
            request = api.get_model(workspace, MODEL).request_status(version, "production", comment=comment)
        finally:
            api.close()
        return {"request": request, "decision": None}
    # the approver cannot approve their own request: request as someone else
    requester = "data-scientist" if me.user == APPROVER else me.user
    as_requester = tallymark.API(settings=me.with_overrides(user=requester))
    as_approver = tallymark.API(settings=me.with_overrides(user=APPROVER))
    try:
        model = as_requester.get_model(workspace, MODEL)
        request = model.request_status(version, "production", comment=comment)
        decision = as_approver.get_model(workspace, MODEL).approve(
            request["id"], comment="reviewed metrics and data lineage"
        )
    finally:
        as_requester.close()
        as_approver.close()
    return {"request": request, "decision": decision}
