"""The machine-learning half of ``tallymark demo``: data generator, preprocessing, XGBoost training.

The unit tests use a small recording object in place of an experiment (a test double for the
logging calls only); tests/test_demo_jobs.py runs the whole demo (jobs, endpoint) against the real
SDK in a temporary ``TALLYMARK_HOME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tallymark.demo.data import (
    COLUMNS,
    FEATURES,
    MIN_FRAUDS,
    MIN_ROWS,
    TIME_MAX,
    counts_for,
    generate,
    load_csv,
)
from tallymark.demo.preprocess import Prepared, preprocess
from tallymark.demo.train import (
    BASELINE_PARAMS,
    CURVE_POINTS,
    downsample_curve,
    to_xgboost_params,
    train_xgboost,
)

SMALL = 20_000
ROUNDS = 20


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return generate(SMALL, seed=0)


@pytest.fixture(scope="module")
def small_prepared(small_frame: pd.DataFrame) -> Prepared:
    return preprocess(small_frame, seed=0)


class Recorder:
    """Records the experiment calls ``train_xgboost`` makes (a test double, not the SDK)."""

    def __init__(self) -> None:
        self.parameters: list[dict[str, Any]] = []
        self.metric_calls: list[tuple[str, float, int | None]] = []
        self.metrics_calls: list[dict[str, float]] = []
        self.confusion_matrices: list[dict[str, Any]] = []
        self.curves: dict[str, tuple[list[float], list[float]]] = {}

    def log_parameters(self, parameters: dict[str, Any], prefix: str | None = None) -> None:
        self.parameters.append(dict(parameters))

    def log_metric(self, name: str, value: Any, step: int | None = None, **_: Any) -> None:
        self.metric_calls.append((name, value, step))

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None, **_: Any) -> None:
        self.metrics_calls.append(dict(metrics))

    def log_confusion_matrix(self, **kwargs: Any) -> None:
        self.confusion_matrices.append(kwargs)

    def log_curve(self, name: str, x: Any, y: Any, overwrite: bool = False, step: int | None = None) -> None:
        self.curves[name] = (list(x), list(y))


# --- data -----------------------------------------------------------------------------------------


def test_generate_has_schema_and_is_deterministic(small_frame: pd.DataFrame) -> None:
    df = small_frame
    assert list(df.columns) == COLUMNS
    assert len(df) == SMALL
    assert all(df[c].dtype == np.float64 for c in FEATURES)
    assert df["Class"].dtype == np.int64
    assert set(df["Class"].unique()) == {0, 1}

    pd.testing.assert_frame_equal(df, generate(SMALL, seed=0))
    assert not df.equals(generate(SMALL, seed=1))

    time = df["Time"].to_numpy()
    assert time[0] == 0.0 and time[-1] == TIME_MAX
    assert np.all(np.diff(time) >= 0)
    assert np.array_equal(time, np.round(time))

    amount = df["Amount"].to_numpy()
    assert amount.min() >= 0.0
    assert np.allclose(amount * 100, np.round(amount * 100), atol=1e-6)
    assert np.median(amount) < amount.mean() < amount.max() / 50  # heavy right tail

    # PCA-like: centred, decreasing spread.
    stds = df[[f"V{i}" for i in range(1, 29)]].std().to_numpy()
    assert np.all(np.abs(df[[f"V{i}" for i in range(1, 29)]].mean().to_numpy()) < 0.1)
    assert stds[0] > 1.5 and stds[-1] < 0.5
    assert np.corrcoef(np.arange(28), stds)[0, 1] < -0.95


def test_fraud_rate_and_duplicates(small_frame: pd.DataFrame) -> None:
    frauds, duplicates, fraud_duplicates = counts_for(SMALL)
    assert small_frame["Class"].sum() == frauds == round(SMALL * 492 / 284_807)
    assert small_frame.duplicated().sum() == duplicates > 0
    # Each duplicate sits right after its original, as in the real file.
    dup_positions = np.flatnonzero(small_frame.duplicated().to_numpy())
    assert (
        small_frame.iloc[dup_positions].to_numpy() == small_frame.iloc[dup_positions - 1].to_numpy()
    ).all()
    assert small_frame[small_frame.duplicated()]["Class"].sum() == fraud_duplicates


def test_full_size_matches_the_public_data_set() -> None:
    assert counts_for(284_807) == (492, 1_081, 19)
    df = generate()
    assert len(df) == 284_807
    assert df["Class"].sum() == 492
    assert round(100 * df["Class"].mean(), 4) == 0.1727
    assert df.duplicated().sum() == 1_081
    assert df["Time"].iloc[-1] == TIME_MAX


def test_small_sizes_keep_enough_frauds_to_stratify() -> None:
    assert counts_for(MIN_ROWS)[0] == MIN_FRAUDS
    prepared = preprocess(generate(MIN_ROWS, seed=3), seed=3)
    assert prepared.frauds >= MIN_FRAUDS
    assert all(c["frauds"] >= 1 for c in prepared.split_counts().values())
    with pytest.raises(ValueError, match="at least"):
        generate(MIN_ROWS - 1)


def test_frauds_differ_in_the_strong_components(small_frame: pd.DataFrame) -> None:
    fraud = small_frame[small_frame["Class"] == 1]
    normal = small_frame[small_frame["Class"] == 0]
    for column in ("V14", "V17", "V12", "V10"):
        gap = (normal[column].mean() - fraud[column].mean()) / normal[column].std()
        assert gap > 1.5, column
    assert abs(normal["V15"].mean() - fraud["V15"].mean()) < 0.5 * normal["V15"].std()


def test_load_csv_round_trip_and_errors(tmp_path: Path) -> None:
    df = generate(MIN_ROWS, seed=5)
    path = tmp_path / "creditcard.csv"
    df.assign(Extra="x").to_csv(path, index=False)
    loaded = load_csv(path)
    pd.testing.assert_frame_equal(loaded, df, check_exact=False, rtol=1e-12)

    bad = tmp_path / "bad.csv"
    df.drop(columns=["V3", "Class"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) V3, Class"):
        load_csv(bad)

    text = tmp_path / "text.csv"
    df.astype({"Amount": object}).assign(Amount=lambda f: f["Amount"].where(f.index != 7, "n/a")).to_csv(
        text, index=False
    )
    with pytest.raises(ValueError, match="'Amount'.*non-numeric"):
        load_csv(text)

    labels = tmp_path / "labels.csv"
    df.assign(Class=df["Class"] * 2).to_csv(labels, index=False)
    with pytest.raises(ValueError, match="only 0 and 1"):
        load_csv(labels)


# --- preprocessing --------------------------------------------------------------------------------


def test_preprocess_splits_stratified_and_scales_on_train_only(
    small_frame: pd.DataFrame, small_prepared: Prepared
) -> None:
    p = small_prepared
    _, duplicates, fraud_duplicates = counts_for(SMALL)
    assert p.rows_raw == SMALL
    assert p.duplicates_dropped == duplicates
    assert p.rows == SMALL - duplicates
    assert p.frauds == small_frame["Class"].sum() - fraud_duplicates

    # Disjoint splits covering the de-duplicated rows, 70/15/15.
    indexes = [p.train_index, p.validation_index, p.test_index]
    union = np.concatenate(indexes)
    assert len(union) == len(set(union.tolist())) == p.rows
    assert set(union.tolist()) == set(small_frame.drop_duplicates().index.tolist())
    sizes = [len(i) / p.rows for i in indexes]
    assert sizes == pytest.approx([0.70, 0.15, 0.15], abs=0.002)

    # Stratified: every split has (within rounding) the overall fraud rate.
    counts = p.split_counts()
    for name, share in zip(("train", "validation", "test"), (0.70, 0.15, 0.15), strict=True):
        assert abs(counts[name]["frauds"] - share * p.frauds) <= 1, name
        assert counts[name]["rows"] == len(getattr(p, f"y_{name}"))
    for name, index in zip(("train", "validation", "test"), indexes, strict=True):
        assert np.array_equal(getattr(p, f"y_{name}"), small_frame.loc[index, "Class"].to_numpy())

    # The scaler saw the training split only.
    raw_train = small_frame.loc[p.train_index, ["Time", "Amount"]]
    assert p.scaler.mean_ == pytest.approx(raw_train.mean().to_numpy(), rel=1e-12)
    assert p.scaler.scale_ == pytest.approx(raw_train.std(ddof=0).to_numpy(), rel=1e-12)
    assert p.X_train[["Time", "Amount"]].mean().to_numpy() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert p.X_train[["Time", "Amount"]].std(ddof=0).to_numpy() == pytest.approx([1.0, 1.0], abs=1e-9)
    raw_test = small_frame.loc[p.test_index, ["Time", "Amount"]].to_numpy()
    expected = (raw_test - p.scaler.mean_) / p.scaler.scale_
    assert np.allclose(p.X_test[["Time", "Amount"]].to_numpy(), expected)
    assert abs(p.X_test["Amount"].mean()) > 1e-6  # not re-fitted on the test split
    # Other features are untouched.
    assert np.array_equal(p.X_test["V14"].to_numpy(), small_frame.loc[p.test_index, "V14"].to_numpy())
    assert list(p.X_train.columns) == FEATURES == p.feature_names

    assert preprocess(small_frame, seed=0).train_index.tolist() == p.train_index.tolist()
    facts = p.summary()
    assert facts["dataset_duplicates_dropped"] == duplicates
    assert facts["dataset_frauds"] == p.frauds and facts["test_frauds"] == counts["test"]["frauds"]


def test_preprocess_rejects_missing_columns(small_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="Amount"):
        preprocess(small_frame.drop(columns=["Amount"]))


# --- training -------------------------------------------------------------------------------------


def test_to_xgboost_params_translates_notebook_names() -> None:
    xgb_params, rounds = to_xgboost_params(BASELINE_PARAMS, seed=7)
    assert rounds == 100
    assert "num_round" not in xgb_params
    assert xgb_params["eval_metric"] == ["auc"]
    assert xgb_params["learning_rate"] == 0.15
    assert xgb_params["seed"] == 7 and xgb_params["nthread"] == 2
    xgb_params, rounds = to_xgboost_params({"num_round": 5, "eval_metric": "aucpr", "nthread": 1})
    assert rounds == 5 and xgb_params["eval_metric"] == ["aucpr", "auc"] and xgb_params["nthread"] == 1


def test_downsample_curve_keeps_endpoints() -> None:
    x = np.linspace(0.0, 1.0, 10_000)
    y = np.sqrt(x)
    xs, ys = downsample_curve(x, y, max_points=CURVE_POINTS)
    assert 2 < len(xs) <= CURVE_POINTS and len(xs) == len(ys)
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(xs) > 0)
    assert downsample_curve([0.0, 1.0], [1.0, 0.0]) == ([0.0, 1.0], [1.0, 0.0])
    flat = downsample_curve(np.zeros(1000), np.zeros(1000), max_points=10)
    assert len(flat[0]) == 2


def test_train_xgboost_logs_rounds_and_test_metrics(small_prepared: Prepared) -> None:
    params = {**BASELINE_PARAMS, "num_round": ROUNDS}
    exp = Recorder()
    rounds_seen: list[tuple[int, int]] = []
    result = train_xgboost(small_prepared, params, exp=exp, on_round=lambda r, t: rounds_seen.append((r, t)))

    assert exp.parameters == [params]
    assert rounds_seen == [(r, ROUNDS) for r in range(1, ROUNDS + 1)]
    for name in ("train_auc", "validation_auc"):
        calls = [(value, step) for n, value, step in exp.metric_calls if n == name]
        assert [step for _, step in calls] == list(range(1, ROUNDS + 1)), name
        assert all(isinstance(v, float) and 0.5 <= v <= 1.0 for v, _ in calls), name
        assert [v for v, _ in calls] == result.history[name]
    assert {n for n, _, _ in exp.metric_calls} == {"train_auc", "validation_auc"}
    assert result.history["train_auc"][-1] > 0.95

    assert len(exp.metrics_calls) == 1
    logged = exp.metrics_calls[0]
    assert set(logged) == {"test_precision", "test_recall", "test_f1", "test_auc_roc", "test_auc_pr"}
    assert logged == result.metrics
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in logged.values())
    assert logged["test_auc_roc"] > 0.9

    (cm,) = exp.confusion_matrices
    assert cm["labels"] == ["Normal", "Fraud"] and cm["title"] == "Test confusion matrix"
    (tn, fp), (fn, tp) = cm["matrix"]
    assert cm["matrix"] == result.confusion_matrix
    assert tn + fp + fn + tp == len(small_prepared.y_test)
    assert fn + tp == small_prepared.y_test.sum()
    if tp + fp:
        assert logged["test_precision"] == pytest.approx(tp / (tp + fp))
    assert logged["test_recall"] == pytest.approx(tp / (tp + fn))

    assert set(exp.curves) == {"roc_curve", "pr_curve"}
    fpr, tpr = exp.curves["roc_curve"]
    assert len(fpr) <= CURVE_POINTS and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    recall, precision = exp.curves["pr_curve"]
    assert len(recall) <= CURVE_POINTS and recall[0] == 1.0 and recall[-1] == 0.0
    assert exp.curves == result.curves

    # Deterministic: the same data and parameters give the same model.
    again = train_xgboost(small_prepared, params)
    assert again.metrics == result.metrics
    assert again.history == result.history


def test_train_xgboost_logs_every_eval_metric(small_prepared: Prepared) -> None:
    exp = Recorder()
    train_xgboost(small_prepared, {"num_round": 3, "eval_metric": "aucpr", "max_depth": 3}, exp=exp)
    names = {n for n, _, _ in exp.metric_calls}
    assert names == {"train_auc", "validation_auc", "train_aucpr", "validation_aucpr"}
