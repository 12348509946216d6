"""The built-in XGBoost trainer: SageMaker's XGBoost algorithm, as a script under the job contract.

Run by a job with ``algorithm="xgboost"`` (docs/sagemaker.md). It reads the hyperparameters
(``SM_HPS``, else ``input/config/hyperparameters.json``, else ``--key value`` arguments; values are
strings as SageMaker passes them), trains on the ``train`` channel evaluating ``train`` and
``validation`` every round, and writes:

- ``SM_MODEL_DIR/xgboost-model``: the booster in XGBoost's UBJ format (loadable without pickle);
- ``SM_MODEL_DIR/signature.json``: the feature schema (``{"inputs": [{"name", "type"}], "outputs":
  [...]}``): parquet column names and types, ``f0..fN-1`` (double) for CSV and libsvm;
- ``SM_OUTPUT_DATA_DIR/metrics.jsonl``: one JSON object per round.

Bad input (unknown content type, empty channel, labels that do not fit the objective, an unknown
hyperparameter) writes a one-line reason to ``SM_OUTPUT_FAILURE`` (it becomes the job's
``failure_reason``) and exits 1. With ``TALLYMARK_DASK_SCHEDULER`` set (the Dask backend sets it)
training runs with ``xgboost.dask`` across that cluster's workers.

    SM_CHANNEL_TRAIN=data/train SM_MODEL_DIR=model python xgboost_train.py --num_round 10
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tallymark.jobs.builtin.channels import ChannelError, Table, content_types, read_channel
from tallymark.jobs.builtin.hyperparams import HyperparameterError, parse
from tallymark.jobs.builtin.labels import LabelError, check_labels, output_names
from tallymark.jobs.builtin.xgboost_fit import RoundReporter, train_dask, train_local
from tallymark.settings import DASK_SCHEDULER_ENV

MODEL_FILE = "xgboost-model"
SIGNATURE_FILE = "signature.json"
METRICS_FILE = "metrics.jsonl"
_BAD_INPUT = (HyperparameterError, ChannelError, LabelError)


def _opt_ml(env: Mapping[str, str]) -> Path:
    return Path(env.get("SM_BASE_DIR", "/opt/ml"))


def read_hyperparameters(env: Mapping[str, str], argv: Sequence[str]) -> dict[str, Any]:
    """``SM_HPS`` (JSON), else ``hyperparameters.json``, else ``--key value`` pairs of ``argv``."""
    if env.get("SM_HPS"):
        try:
            hps = json.loads(env["SM_HPS"])
        except ValueError:
            raise HyperparameterError("SM_HPS is not valid JSON") from None
        if not isinstance(hps, dict):
            raise HyperparameterError("SM_HPS is not a JSON object")
        return hps
    config = Path(env.get("SM_INPUT_CONFIG_DIR", str(_opt_ml(env) / "input" / "config")))
    path = config / "hyperparameters.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        if not isinstance(data, dict):
            raise HyperparameterError(f"{path} is not a JSON object")
        return data
    out: dict[str, Any] = {}
    args = list(argv)
    while args:
        key = args.pop(0)
        if not key.startswith("--") or not args:
            raise HyperparameterError(f"expected --name value arguments, got {key!r}")
        out[key[2:]] = args.pop(0)
    return out


def _channel_dir(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(f"SM_CHANNEL_{name.upper()}")
    if value:
        return value
    listed = env.get("SM_CHANNELS")
    if listed is not None:
        try:
            names = json.loads(listed)
        except ValueError:
            names = []
        if name not in names:
            return None
    default = _opt_ml(env) / "input" / "data" / name
    return str(default) if default.exists() else None


def _check_same_features(train: Table, validation: Table) -> None:
    if train.fmt == "parquet" and validation.names != train.names:
        raise ChannelError("channel 'validation' has other feature columns than 'train'")
    if len(validation.names) > len(train.names):
        raise ChannelError(
            f"channel 'validation' has {len(validation.names)} features, 'train' has {len(train.names)}"
        )


def _signature(train: Table, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": [{"name": n, "type": t} for n, t in zip(train.names, train.types, strict=True)],
        "outputs": [{"name": n, "type": "double"} for n in output_names(params)],
    }


def run(env: Mapping[str, str], argv: Sequence[str]) -> int:
    """Train and write the model; raises one of the bad-input errors for a user's mistake."""
    hps = read_hyperparameters(env, argv)
    params, rounds, early = parse(hps)
    csv_weights = str(hps.get("csv_weights", "0")).strip() == "1"
    types = content_types(dict(env))
    train_dir = _channel_dir(env, "train")
    if train_dir is None:
        raise ChannelError("the built-in XGBoost trainer needs a 'train' channel")
    train = read_channel("train", train_dir, types.get("train"), csv_weights)
    check_labels("train", train.y, params)
    validation = None
    val_dir = _channel_dir(env, "validation")
    if val_dir is not None:
        validation = read_channel("validation", val_dir, types.get("validation"), csv_weights)
        check_labels("validation", validation.y, params)
        _check_same_features(train, validation)
        if validation.fmt == "libsvm" and validation.X.shape[1] < train.X.shape[1]:
            import scipy.sparse as sp

            v = validation.X
            validation.X = sp.csr_matrix((v.data, v.indices, v.indptr), shape=(v.shape[0], train.X.shape[1]))
    model_dir = Path(env.get("SM_MODEL_DIR", str(_opt_ml(env) / "model")))
    data_dir = Path(env.get("SM_OUTPUT_DATA_DIR", str(_opt_ml(env) / "output" / "data")))
    model_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"tallymark xgboost: {train.rows} training rows × {len(train.names)} features ({train.fmt})"
        + (f", {validation.rows} validation rows" if validation is not None else "")
        + f"; {rounds} rounds, objective {params['objective']}",
        flush=True,
    )
    reporter = RoundReporter(data_dir / METRICS_FILE)
    try:
        scheduler = env.get(DASK_SCHEDULER_ENV)
        if scheduler:
            booster = train_dask(scheduler, params, rounds, early, train, validation, reporter)
        else:
            booster = train_local(params, rounds, early, train, validation, reporter)
    finally:
        reporter.close()
    (model_dir / MODEL_FILE).write_bytes(bytes(booster.save_raw("ubj")))
    (model_dir / SIGNATURE_FILE).write_text(json.dumps(_signature(train, params), indent=1) + "\n")
    print(
        f"tallymark xgboost: {booster.num_boosted_rounds()} trees saved to {model_dir / MODEL_FILE}",
        flush=True,
    )
    return 0


def _failure_path(env: Mapping[str, str]) -> Path:
    if env.get("SM_OUTPUT_FAILURE"):
        return Path(env["SM_OUTPUT_FAILURE"])
    return Path(env.get("SM_OUTPUT_DIR", str(_opt_ml(env) / "output"))) / "failure"


def _fail(env: Mapping[str, str], message: str) -> None:
    print(f"tallymark xgboost: {message}", file=sys.stderr, flush=True)
    path = _failure_path(env)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"tallymark xgboost: cannot write {path}: {exc}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(env, args)
    except _BAD_INPUT as exc:
        _fail(env, str(exc))
        return 1
    except Exception as exc:
        traceback.print_exc()
        name = type(exc).__name__
        if name == "XGBoostError":
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else name
            _fail(env, f"XGBoost refused the training: {first}")
        else:
            _fail(env, f"the built-in XGBoost trainer failed: {name}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
