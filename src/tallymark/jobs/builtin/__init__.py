"""Built-in algorithms: scripts that run under the same SageMaker contract as a user's script.

A job with ``algorithm="xgboost"`` (or a SageMaker ``Estimator`` whose ``image_uri`` names XGBoost)
runs :mod:`tallymark.jobs.builtin.xgboost_train` as its script, so the local runner and the Dask
backend need nothing special for it (docs/sagemaker.md).

>>> script_path("xgboost").name
'xgboost_train.py'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ALGORITHMS", "script_path"]

ALGORITHMS: dict[str, str] = {"xgboost": "xgboost_train.py"}


def script_path(algorithm: str) -> Path:
    """The script file that implements a built-in ``algorithm`` (ValueError for an unknown one)."""
    name = ALGORITHMS.get(algorithm.strip().lower())
    if name is None:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown built-in algorithm {algorithm!r} (known: {known})")
    return Path(__file__).with_name(name)
