"""Job names, made the way SageMaker makes them: ``BASE-YYYY-MM-DD-HH-MM-SS-mmm`` (UTC).

>>> job_name("train.py")                          # doctest: +SKIP
'train-2026-12-02-01-55-03-123'
"""

from __future__ import annotations

import re
import time

__all__ = ["base_name", "job_name"]

MAX = 63


def base_name(source: str) -> str:
    """A base from a script or algorithm name: letters, digits and hyphens only."""
    stem = source.rsplit("/", 1)[-1]
    stem = stem[:-3] if stem.endswith(".py") else stem
    base = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")
    return base or "tallymark-job"


def job_name(source: str, at: float | None = None) -> str:
    t = time.time() if at is None else at
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}"
    base = base_name(source)[: MAX - len(stamp) - 1].rstrip("-")
    return f"{base}-{stamp}"
