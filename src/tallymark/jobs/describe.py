"""A job as SageMaker describes one (DescribeTrainingJob / DescribeProcessingJob), from its row."""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["describe"]


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def describe(info: dict[str, Any]) -> dict[str, Any]:
    spec = info.get("spec") or {}
    training = info["kind"] == "training"
    start, end = info.get("started_at"), info.get("ended_at")
    seconds = None if start is None or end is None else max(0, round((end - start) / 1000))
    attempts = info.get("attempts") or []
    billable = (
        sum(max(0, round((a["ended_at"] - a["started_at"]) / 1000)) for a in attempts)
        if attempts
        else seconds
    )
    resources = {
        "InstanceType": (info.get("resources") or {}).get("instance_type", "local"),
        "InstanceCount": (info.get("resources") or {}).get("instance_count", 1),
        "VolumeSizeInGB": 0,
    }
    out: dict[str, Any] = {
        "JobName": info["name"],
        "JobKind": info["kind"],
        "Workspace": info["workspace"],
        "Backend": info["backend"],
        "SecondaryStatus": info.get("secondary_status"),
        "CreationTime": _time(info.get("created_at")),
        "ExitCode": info.get("exit_code"),
        "FailureReason": info.get("failure_reason"),
        "ResourceConfig": resources,
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.get("max_run")},
        "Environment": spec.get("environment") or {},
        "Attempt": info.get("attempt"),
        "MaxAttempts": info.get("max_attempts"),
        "attempts": attempts,
        "LogBytes": info.get("log_bytes"),
        "LogDropped": info.get("log_dropped"),
        "Links": info.get("links") or [],
        "ExperimentKey": info.get("experiment_key"),
    }
    if training:
        out.update(
            {
                "TrainingJobName": info["name"],
                "TrainingJobStatus": info["status"],
                "AlgorithmSpecification": {
                    "TrainingImage": spec.get("algorithm") or "script",
                    "TrainingInputMode": "File",
                    "EntryPoint": spec.get("script"),
                },
                "HyperParameters": dict(spec.get("hyperparameters") or {}),
                "InputDataConfig": [
                    {
                        "ChannelName": c["name"],
                        "DataSource": {"S3DataSource": {"S3Uri": c["uri"], "S3DataType": "S3Prefix"}},
                        **({"ContentType": c["content_type"]} if c.get("content_type") else {}),
                    }
                    for c in spec.get("inputs", [])
                ],
                "OutputDataConfig": {"S3OutputPath": spec.get("output_path")},
                "ModelArtifacts": {"S3ModelArtifacts": info.get("model_data")},
                "TrainingStartTime": _time(start),
                "TrainingEndTime": _time(end),
                "TrainingTimeInSeconds": seconds,
                "BillableTimeInSeconds": billable,
            }
        )
    else:
        out.update(
            {
                "ProcessingJobName": info["name"],
                "ProcessingJobStatus": info["status"],
                "AppSpecification": {
                    "ContainerEntrypoint": [spec.get("script")],
                    "ContainerArguments": spec.get("arguments", []),
                },
                "ProcessingInputs": [
                    {
                        "InputName": c["name"],
                        "S3Input": {"S3Uri": c["uri"], "LocalPath": c.get("destination")},
                    }
                    for c in spec.get("inputs", [])
                ],
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {
                            "OutputName": o["name"],
                            "S3Output": {"S3Uri": o["destination"], "LocalPath": o["source"]},
                        }
                        for o in spec.get("outputs", [])
                    ]
                },
                "ProcessingStartTime": _time(start),
                "ProcessingEndTime": _time(end),
                "ProcessingTimeInSeconds": seconds,
            }
        )
    return out
