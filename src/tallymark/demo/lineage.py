"""The audit half of the demo: dataset versions, models in the registry, four-eyes promotion.

- A ``fraud-data-prep`` experiment logs the raw transactions as ``fraud-dataset`` (alias ``raw``:
  the file, hashed, plus a reference to where the public original lives) and consumes it; the
  preprocessing job then logs its output as the next version (alias ``preprocessed``).
- Each training job's experiment (``log_training_job``) consumes the splits the preprocessing job
  produced, holds the job's model, and registers it as a version of ``fraud-xgb``.
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


def _source_tag(source: str) -> str:
    return source.replace(":", "-").replace("/", "_").replace("(", "-").replace(")", "").replace(", ", "-")


def log_raw(exp: Any, frame: Any, source: str, data_path: str | None) -> Any:
    """Log the raw transactions as the next ``fraud-dataset`` version (alias ``raw``) and consume it.

    The file is hashed into the blob store; the public original is recorded by its URI only (jobs
    reading the version fetch its local files, never the remote one).
    """
    import tallymark

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
        raw.add(
            _parquet(frame, cache_dir() / f"raw-{_source_tag(source)}.parquet"),
            logical_path="creditcard.parquet",
        )
    raw.add_remote(
        KAGGLE_URI,
        logical_path="original/creditcard.csv",
        metadata={"note": "the public file this schema comes from"},
    )
    logged_raw = exp.log_artifact(raw)
    exp.get_artifact(DATASET, logged_raw.version)  # the preparation step consumes the raw version
    return logged_raw


def register_trained(exp: Any, logged_model: str, spec_name: str, job_name: str) -> dict[str, Any]:
    """Register the model ``log_training_job`` logged into ``exp`` (as ``logged_model``, with its
    feature schema) as the next ``fraud-xgb`` version; the endpoint checks requests against it."""
    from tallymark.sdk.transport import default_transport

    exp.flush()
    # Experiment.register_model registers under the logged model's own name; the job logged it
    # under its base name (xgb-baseline), the registry entry is fraud-xgb.
    return default_transport().call(
        "register_model",
        workspace=exp.workspace,
        name=MODEL,
        body={
            "experiment_key": exp.get_key(),
            "experiment_model": logged_model,
            "version": None,
            "status": "development",
            "description": f"{spec_name}: credit-card fraud detection, trained by job {job_name}",
            "tags": [spec_name],
        },
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
