"""Checks that a channel's labels fit the objective, before XGBoost says something cryptic."""

from __future__ import annotations

from typing import Any

__all__ = ["LabelError", "check_labels", "output_names"]


class LabelError(ValueError):
    """Labels the objective cannot train on (e.g. 2.0 for ``binary:logistic``)."""


def check_labels(channel: str, y: Any, params: dict[str, Any]) -> None:
    import numpy as np

    labels = np.asarray(y, dtype=np.float64)
    objective = str(params.get("objective", ""))
    if np.isnan(labels).any():
        row = int(np.flatnonzero(np.isnan(labels))[0]) + 1
        raise LabelError(f"channel {channel!r}: row {row} has no label (NaN)")
    if objective.startswith("binary:"):
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise LabelError(
                f"channel {channel!r}: objective {objective} needs labels 0 or 1, row {row} has "
                f"{labels[row - 1]:g}"
            )
    elif objective == "reg:logistic":
        bad = (labels < 0) | (labels > 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise LabelError(f"channel {channel!r}: objective reg:logistic needs labels in [0, 1], row {row}")
    elif objective.startswith("multi:"):
        classes = int(params.get("num_class", 0))
        bad = (labels < 0) | (labels >= classes) | (labels != np.floor(labels))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise LabelError(
                f"channel {channel!r}: objective {objective} with num_class={classes} needs labels "
                f"0..{classes - 1}, row {row} has {labels[row - 1]:g}"
            )
    elif objective.startswith("count:") or objective in ("reg:gamma", "reg:tweedie"):
        if (labels < 0).any():
            raise LabelError(f"channel {channel!r}: objective {objective} needs labels >= 0")


def output_names(params: dict[str, Any]) -> list[str]:
    """The model's outputs in the feature schema: one score, or one per class for ``multi:softprob``."""
    if params.get("objective") == "multi:softprob":
        return [f"score_{k}" for k in range(int(params["num_class"]))]
    return ["score"]
