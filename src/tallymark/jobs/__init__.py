"""Processing and training jobs, locally or on a Dask cluster (docs/jobs.md).

>>> from tallymark.jobs import ProcessingJob, TrainingJob      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProcessingJob", "TrainingJob"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tallymark.jobs import job

        return getattr(job, name)
    raise AttributeError(f"module 'tallymark.jobs' has no attribute {name!r}")
