"""Which listed operation each SDK transport call carries out (see :mod:`tallymark.service.operations`).

Both transports (:class:`~tallymark.sdk.transport.LocalTransport` in-process,
:class:`~tallymark.sdk.transport.HttpTransport` over REST) offer the same calls: the methods named
here, the keys of ``read(op, ...)`` and the keys of ``call(op, ...)``. ``tests/test_operations.py``
checks that every value is a listed operation and that the two transports accept exactly the keys
of this map, so a call added to one transport only (or under an unlisted operation) fails there.
"""

from __future__ import annotations

__all__ = ["TRANSPORT_OPERATIONS"]

TRANSPORT_OPERATIONS: dict[str, str] = {
    # methods of both transports
    "create_experiment": "experiment.create",
    "send_batch": "experiment.log",
    "end_experiment": "experiment.end",
    "upload_asset": "asset.add",
    "metric_arrays": "metric.read",
    "asset_bytes": "asset.read",
    # read(op, ...)
    "experiment": "experiment.get",
    "workspaces": "workspace.list",
    "projects": "project.list",
    "query": "experiment.query",
    "params": "experiment.read",
    "others": "experiment.read",
    "tags": "experiment.read",
    "metrics_summary": "experiment.read",
    "items": "experiment.read",
    "metric": "metric.read",
    "metric_many": "metric.read",
    "assets": "asset.list",
    # call(op, ...): blobs
    "blobs_missing": "blob.missing",
    "put_blob": "blob.put",
    "download_blob": "blob.read",
    # call(op, ...): artifacts and lineage
    "log_artifact_version": "artifact.log",
    "artifact_version": "artifact.get",
    "consume_artifact": "artifact.consume",
    "list_artifacts": "artifact.list",
    "list_artifact_versions": "artifact.versions",
    "delete_artifact_version": "artifact.delete",
    "lineage": "lineage.get",
    # call(op, ...): the model registry
    "log_model": "model.log",
    "logged_models": "model.logged",
    "register_model": "model.register",
    "list_models": "model.list",
    "get_model": "model.get",
    "model_version": "model.get",
    "training_inputs": "model.get",
    "set_status": "model.set_status",
    "request_status": "model.request",
    "decide": "request.approve",  # approve=False is request.reject: the same permission, approver too
    "list_requests": "request.list",
    "add_model_tag": "model.tag",
    # call(op, ...): endpoints' prediction logs (tallymark.sdk.predictions)
    "log_predictions": "prediction.log",
    "log_ground_truth": "prediction.label",
    "read_predictions": "prediction.read",
    # call(op, ...): endpoints (serving)
    "create_endpoint": "endpoint.create",
    "get_endpoint": "endpoint.get",
    "list_endpoints": "endpoint.list",
    "endpoint_status": "endpoint.status",
    "delete_endpoint": "endpoint.delete",
    "trust_model": "model.trust",
    # call(op, ...): jobs (docs/jobs.md)
    "create_job": "job.create",
    "get_job": "job.get",
    "list_jobs": "job.list",
    "job_status": "job.status",
    "job_log": "job.log",
    "job_logs": "job.get",
    "job_link": "job.link",
    "stop_job": "job.stop",
}

# The transports' methods that are calls themselves (the other keys go through read() or call()).
METHODS: frozenset[str] = frozenset(
    {"create_experiment", "send_batch", "end_experiment", "upload_asset", "metric_arrays", "asset_bytes"}
)
