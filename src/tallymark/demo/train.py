"""Training an XGBoost fraud classifier and logging it to a tallymark experiment.

:func:`train_xgboost` takes parameters in the names a notebook uses (``num_round``,
``learning_rate``, ``eval_metric`` …), trains with ``xgboost.train`` on the training split while
evaluating on training and validation data every round, and then scores the test split. With an
experiment it logs, in this order:

- the parameters as given (``exp.log_parameters(params)``);
- after every boosting round ``r`` (1-based), ``train_<metric>`` and ``validation_<metric>`` for
  each evaluation metric (``auc`` is always among them) with ``step=r``;
- the test metrics at threshold 0.5: ``test_precision``, ``test_recall``, ``test_f1``,
  ``test_auc_roc``, ``test_auc_pr`` (average precision);
- the test confusion matrix ``[[tn, fp], [fn, tp]]`` with labels ``Normal``/``Fraud``;
- the curves ``roc_curve`` (x = false-positive rate, y = true-positive rate) and ``pr_curve``
  (x = recall, y = precision), each downsampled to at most 500 points.

Training is deterministic: ``seed`` defaults to the split seed and ``nthread`` to 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import xgboost as xgb
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from tallymark.demo.preprocess import Prepared

__all__ = [
    "BASELINE_PARAMS",
    "CURVE_POINTS",
    "ExperimentLike",
    "Result",
    "downsample_curve",
    "to_xgboost_params",
    "train_xgboost",
]

BASELINE_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "num_round": 100,
    "eval_metric": "auc",
    "learning_rate": 0.15,
    "booster": "gbtree",
}
DEFAULT_ROUNDS = 100
DEFAULT_NTHREAD = 2
CURVE_POINTS = 500
THRESHOLD = 0.5
CLASS_LABELS = ["Normal", "Fraud"]


class ExperimentLike(Protocol):
    """The part of ``tallymark.Experiment`` that training uses (DESIGN §2)."""

    def log_parameters(self, parameters: Mapping[str, Any], prefix: str | None = None) -> Any: ...

    def log_metric(self, name: str, value: Any, step: int | None = None) -> Any: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> Any: ...

    def log_confusion_matrix(
        self,
        y_true: Any = None,
        y_predicted: Any = None,
        matrix: Any = None,
        labels: Any = None,
        title: str = "Confusion Matrix",
        step: int | None = None,
    ) -> Any: ...

    def log_curve(
        self, name: str, x: Any, y: Any, overwrite: bool = False, step: int | None = None
    ) -> Any: ...


@dataclass
class Result:
    """What one training run produced.

    ``metrics`` holds the test metrics by their logged names; ``history`` the per-round evaluation
    values (``train_auc``, ``validation_auc`` …, index ``r - 1`` for round ``r``); ``curves`` maps
    ``roc_curve``/``pr_curve`` to the downsampled ``(x, y)`` lists that were logged.
    """

    booster: xgb.Booster
    params: dict[str, Any]
    xgboost_params: dict[str, Any]
    num_rounds: int
    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    curves: dict[str, tuple[list[float], list[float]]]
    history: dict[str, list[float]] = field(default_factory=dict)
    threshold: float = THRESHOLD
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0


def to_xgboost_params(params: Mapping[str, Any], seed: int = 0) -> tuple[dict[str, Any], int]:
    """Translate notebook-style parameters into ``(xgboost params, num_boost_round)``.

    ``num_round`` (or ``num_boost_round``) becomes the round count (default 100); ``eval_metric`` is
    made a list that includes ``auc``; ``seed`` and ``nthread`` (2) are filled in unless given. Other
    names (``learning_rate``, ``max_depth``, ``scale_pos_weight`` …) are native XGBoost aliases.
    """
    out = dict(params)
    rounds = out.pop("num_round", None)
    alt = out.pop("num_boost_round", None)
    rounds = int(rounds if rounds is not None else alt if alt is not None else DEFAULT_ROUNDS)
    if rounds < 1:
        raise ValueError(f"num_round must be at least 1 (got {rounds})")
    metrics = out.get("eval_metric", [])
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if "auc" not in metrics:
        metrics.append("auc")
    out["eval_metric"] = metrics
    out.setdefault("objective", "binary:logistic")
    out.setdefault("seed", seed)
    out.setdefault("nthread", DEFAULT_NTHREAD)
    out.setdefault("verbosity", 0)
    return out, rounds


def downsample_curve(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, max_points: int = CURVE_POINTS
) -> tuple[list[float], list[float]]:
    """At most ``max_points`` points of the polyline (x, y), always keeping both endpoints.

    Points are picked evenly along the curve's length (in the unit square of the two ranges), so
    steep and flat stretches both keep their shape; a PR curve's many points at recall 1.0 do not
    crowd out the interesting part.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError("x and y must be 1-D and of equal length")
    n = xs.shape[0]
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if n <= max_points:
        return xs.tolist(), ys.tolist()
    span_x = float(np.ptp(xs)) or 1.0
    span_y = float(np.ptp(ys)) or 1.0
    steps = np.hypot(np.diff(xs) / span_x, np.diff(ys) / span_y)
    length = np.concatenate([[0.0], np.cumsum(steps)])
    targets = np.linspace(0.0, length[-1], max_points)
    picked = np.clip(np.searchsorted(length, targets), 0, n - 1)
    picked = np.unique(np.concatenate([[0], picked, [n - 1]]))
    if picked.shape[0] > max_points:
        picked = np.concatenate([picked[: max_points - 1], [n - 1]])
    return xs[picked].tolist(), ys[picked].tolist()


class _RoundLogger(xgb.callback.TrainingCallback):
    """Records (and logs) the evaluation metrics after every boosting round."""

    def __init__(
        self,
        total: int,
        exp: ExperimentLike | None,
        on_round: Callable[[int, int], None] | None,
    ) -> None:
        super().__init__()
        self.total = total
        self.exp = exp
        self.on_round = on_round
        self.history: dict[str, list[float]] = {}

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Mapping[str, Any]]) -> bool:
        step = epoch + 1
        for data_name, metrics in evals_log.items():
            for metric_name, values in metrics.items():
                name = f"{data_name}_{metric_name}"
                value = float(values[-1])
                self.history.setdefault(name, []).append(value)
                if self.exp is not None:
                    self.exp.log_metric(name, value, step=step)
        if self.on_round is not None:
            self.on_round(step, self.total)
        return False  # never stop early


def _test_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (scores >= threshold).astype(np.int64)
    return {
        "test_precision": float(precision_score(y_true, predicted, zero_division=0)),
        "test_recall": float(recall_score(y_true, predicted, zero_division=0)),
        "test_f1": float(f1_score(y_true, predicted, zero_division=0)),
        "test_auc_roc": float(roc_auc_score(y_true, scores)),
        "test_auc_pr": float(average_precision_score(y_true, scores)),
    }


def train_xgboost(
    prepared: Prepared,
    params: Mapping[str, Any],
    exp: ExperimentLike | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> Result:
    """Train a booster on ``prepared`` with notebook-style ``params`` and evaluate it on the test set.

    If ``exp`` is given, parameters, per-round ``train_*``/``validation_*`` metrics, test metrics,
    the confusion matrix and the ROC/PR curves are logged to it (see the module docstring).
    ``on_round(round, total)`` is called after each round (1-based), e.g. to drive a progress bar.
    """
    params = dict(params)
    xgb_params, rounds = to_xgboost_params(params, seed=prepared.seed)
    nthread = int(xgb_params["nthread"])
    if exp is not None:
        exp.log_parameters(params)

    names = list(prepared.feature_names)
    dtrain = xgb.DMatrix(prepared.X_train, label=prepared.y_train, feature_names=names, nthread=nthread)
    dvalid = xgb.DMatrix(
        prepared.X_validation, label=prepared.y_validation, feature_names=names, nthread=nthread
    )
    dtest = xgb.DMatrix(prepared.X_test, label=prepared.y_test, feature_names=names, nthread=nthread)

    logger = _RoundLogger(rounds, exp, on_round)
    wall, cpu = time.perf_counter(), time.process_time()
    booster = xgb.train(
        xgb_params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        verbose_eval=False,
        callbacks=[logger],
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    scores = booster.predict(dtest)
    y_test = prepared.y_test
    metrics = _test_metrics(y_test, scores, THRESHOLD)
    predicted = (scores >= THRESHOLD).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_test, predicted, labels=[0, 1]).ravel())
    matrix = [[tn, fp], [fn, tp]]
    fpr, tpr, _ = roc_curve(y_test, scores)
    precision, recall, _ = precision_recall_curve(y_test, scores)
    curves = {
        "roc_curve": downsample_curve(fpr, tpr),
        "pr_curve": downsample_curve(recall, precision),
    }

    if exp is not None:
        exp.log_metrics(metrics)
        exp.log_confusion_matrix(matrix=matrix, labels=list(CLASS_LABELS), title="Test confusion matrix")
        for name, (x, y) in curves.items():
            exp.log_curve(name, x=x, y=y)

    return Result(
        booster=booster,
        params=params,
        xgboost_params=xgb_params,
        num_rounds=rounds,
        metrics=metrics,
        confusion_matrix=matrix,
        curves=curves,
        history=logger.history,
        threshold=THRESHOLD,
        train_seconds=wall,
        train_cpu_seconds=cpu,
    )
