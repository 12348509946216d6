"""``tallymark demo``: the reference workflow, credit-card fraud detection with XGBoost.

- :mod:`tallymark.demo.data`: a synthetic data set with the public credit-card-fraud schema
  (:func:`~tallymark.demo.data.generate`) and a validating CSV reader
  (:func:`~tallymark.demo.data.load_csv`);
- :mod:`tallymark.demo.preprocess`: de-duplication, stratified split, scaling
  (:func:`~tallymark.demo.preprocess.preprocess`);
- :mod:`tallymark.demo.train`: XGBoost training that logs to an experiment
  (:func:`~tallymark.demo.train.train_xgboost`);
- :mod:`tallymark.demo.workflow`: the whole demo with progress and a comparison
  (:func:`~tallymark.demo.workflow.run_demo`).

Nothing heavy is imported until one of these names is used.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# XGBoost and scikit-learn share one OpenMP runtime (libgomp), which by default keeps idle worker
# threads spinning. When the cores are busy with anything else (a server, a test run, another
# training) the spinning thread starves the working one and ``nthread=2`` training gets ~10x slower
# than ``nthread=1``. Sleeping idle threads cost little here. libgomp reads this once, when it is
# loaded, so it is set before any demo module imports scikit-learn or XGBoost; an explicit setting
# in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["generate", "load_csv", "preprocess", "run_demo", "train_xgboost"]

_LAZY = {
    "generate": "tallymark.demo.data",
    "load_csv": "tallymark.demo.data",
    "preprocess": "tallymark.demo.preprocess",
    "train_xgboost": "tallymark.demo.train",
    "run_demo": "tallymark.demo.workflow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tallymark.demo' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
