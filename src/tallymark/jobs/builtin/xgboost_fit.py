"""Boosting on one machine (``xgboost.train``) or across a Dask cluster (``xgboost.dask``).

Both report every round the same way: a SageMaker-style line on stdout
(``[1]#011train-auc:0.99012#011validation-auc:0.95530``, the ``#011`` being how SageMaker's logs
show the tab) and a JSON line ``{"round": 1, "train-auc": …, "validation-auc": …}`` appended to
``metrics.jsonl``. Rounds count from 1 (round r = after r trees). Locally the lines come as each
round ends; with Dask the rounds run on the workers and are reported when training returns.

With ``early_stopping_rounds`` the saved model is cut at the best round (the last evaluation set's
last metric, as SageMaker does), so the endpoint serves what the metrics chose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tallymark.jobs.builtin.channels import Table

__all__ = ["RoundReporter", "train_dask", "train_local"]


class RoundReporter:
    """Prints and records each round's evaluation results."""

    def __init__(self, metrics_file: Path | None, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.handle = metrics_file.open("a", encoding="utf-8") if metrics_file is not None else None

    def round(self, number: int, results: Mapping[str, float]) -> None:
        parts = "".join(f"#011{name}:{value:.5f}" for name, value in results.items())
        print(f"[{number}]{parts}", file=self.out, flush=True)
        if self.handle is not None:
            self.handle.write(json.dumps({"round": number, **results}) + "\n")
            self.handle.flush()

    def history(self, evals_log: Mapping[str, Mapping[str, Any]]) -> None:
        """Report a whole training's evaluation log (``{"train": {"auc": [...]}, …}``) at once."""
        rounds = max((len(v) for m in evals_log.values() for v in m.values()), default=0)
        for r in range(rounds):
            self.round(r + 1, _at(evals_log, r))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _at(evals_log: Mapping[str, Mapping[str, Any]], index: int) -> dict[str, float]:
    return {
        f"{data}-{metric}": float(values[index])
        for data, metrics in evals_log.items()
        for metric, values in metrics.items()
        if index < len(values)
    }


def _callback(reporter: RoundReporter) -> Any:
    import xgboost as xgb

    class _Report(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            reporter.round(epoch + 1, _at(evals_log, -1) if evals_log else {})
            return False

    return _Report()


def _best(booster: Any, early: int | None, table: Table) -> Any:
    best = getattr(booster, "best_iteration", None) if early else None
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    if table.fmt != "parquet":
        # CSV/libsvm columns have no names; a model that carried f0.. would refuse unnamed input,
        # which SageMaker's own XGBoost models accept. The names live in signature.json instead.
        booster.feature_names = None
        booster.feature_types = None
    return booster


def _dmatrix(table: Table, nthread: int | None) -> Any:
    import xgboost as xgb

    names = table.names if table.fmt == "parquet" else None
    return xgb.DMatrix(table.X, label=table.y, weight=table.weight, feature_names=names, nthread=nthread)


def train_local(
    params: dict[str, Any],
    rounds: int,
    early: int | None,
    train: Table,
    validation: Table | None,
    reporter: RoundReporter,
) -> Any:
    """``xgboost.train`` on this machine, evaluating ``train`` and ``validation`` every round."""
    import xgboost as xgb

    nthread = params.get("nthread")
    dtrain = _dmatrix(train, nthread)
    evals = [(dtrain, "train")]
    if validation is not None:
        evals.append((_dmatrix(validation, nthread), "validation"))
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        early_stopping_rounds=early,
        verbose_eval=False,
        callbacks=[_callback(reporter)],
    )
    return _best(booster, early, train)


def _scatter(client: Any, table: Table, parts: int) -> tuple[Any, Any, Any]:
    """The table as Dask collections whose partitions already sit on the workers.

    The channel's files live in the job's private /opt/ml, which the workers cannot see, so the
    job reads them and hands the workers their partitions directly (no trip through the graph).
    """
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    if table.fmt == "parquet":
        frame = table.X.reset_index(drop=True).copy()
    else:
        dense = table.X.toarray() if sp.issparse(table.X) else np.asarray(table.X)
        frame = pd.DataFrame(dense, columns=table.names)
    frame["__label__"] = np.asarray(table.y, dtype=np.float64)
    if table.weight is not None:
        frame["__weight__"] = np.asarray(table.weight, dtype=np.float64)
    parts = max(1, min(parts, len(frame)))
    pieces = [frame.iloc[idx] for idx in np.array_split(np.arange(len(frame)), parts)]
    futures = client.scatter(pieces)
    ddf = dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False)
    X = ddf[list(frame.columns[: len(table.names)])]
    weight = ddf["__weight__"] if table.weight is not None else None
    return X, ddf["__label__"], weight


def train_dask(
    address: str,
    params: dict[str, Any],
    rounds: int,
    early: int | None,
    train: Table,
    validation: Table | None,
    reporter: RoundReporter,
) -> Any:
    """``xgboost.dask.train`` across the workers of the cluster at ``address``."""
    from distributed import Client
    from xgboost import dask as dxgb

    with Client(address, timeout=30) as client:
        workers = len(client.scheduler_info().get("workers", {})) or 1
        print(f"tallymark xgboost: training on {workers} Dask workers at {address}", flush=True)
        names = train.names if train.fmt == "parquet" else None
        X, y, w = _scatter(client, train, workers)
        dtrain = dxgb.DaskDMatrix(client, X, y, weight=w, feature_names=names)
        evals = [(dtrain, "train")]
        if validation is not None:
            vX, vy, vw = _scatter(client, validation, workers)
            evals.append((dxgb.DaskDMatrix(client, vX, vy, weight=vw, feature_names=names), "validation"))
        output = dxgb.train(
            client,
            params,
            dtrain,
            num_boost_round=rounds,
            evals=evals,
            early_stopping_rounds=early,
            verbose_eval=False,
        )
        reporter.history(output["history"])
        return _best(output["booster"], early, train)
