"""tallymark: self-hosted, audit-ready ML experiment management.

>>> from tallymark import Experiment                                  # doctest: +SKIP
>>> with Experiment(project_name="fraud-detection", workspace="risk-team") as exp:   # doctest: +SKIP
...     exp.log_parameters({"learning_rate": 0.15})
...     exp.log_metric("auc", 0.97, step=1)

Importing tallymark has no side effects and stays light: the SDK's parts load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["API", "Artifact", "Experiment", "OfflineExperiment", "__version__", "panel"]

if TYPE_CHECKING:
    from tallymark.panels import panel
    from tallymark.sdk.api import API
    from tallymark.sdk.artifact import Artifact
    from tallymark.sdk.experiment import Experiment, OfflineExperiment

_LAZY = {
    "Experiment": "tallymark.sdk.experiment",
    "OfflineExperiment": "tallymark.sdk.experiment",
    "API": "tallymark.sdk.api",
    "Artifact": "tallymark.sdk.artifact",
    "panel": "tallymark.panels",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tallymark' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
