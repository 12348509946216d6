"""The built-in XGBoost algorithm's hyperparameters: names, types, checks (docs/sagemaker.md).

SageMaker hands hyperparameters to a container as strings (``{"num_round": "100"}``); the built-in
algorithm accepts a fixed list of names and refuses the rest. This module turns such a mapping into
``(xgboost params, num_round, early_stopping_rounds)`` or raises :class:`HyperparameterError` with a
message a user can act on (it becomes the job's ``failure_reason``)::

    >>> params, rounds, early = parse({"num_round": "10", "eta": "0.3", "eval_metric": "auc,aucpr"})
    >>> rounds, params["eta"], params["eval_metric"]
    (10, 0.3, ['auc', 'aucpr'])

Keys starting with ``sagemaker_`` (the SDK's own bookkeeping, e.g. ``sagemaker_program``) are
ignored, as the real container does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ALIASES", "HyperparameterError", "KNOWN", "parse"]


class HyperparameterError(ValueError):
    """A hyperparameter the built-in trainer cannot use (unknown name, wrong type, bad value)."""


def _int(name: str, raw: str) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        try:
            as_float = float(str(raw).strip())
        except ValueError:
            as_float = float("nan")
        if as_float.is_integer():
            return int(as_float)
        raise HyperparameterError(f"hyperparameter {name}: expected an integer, got {raw!r}") from None


def _float(name: str, raw: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise HyperparameterError(f"hyperparameter {name}: expected a number, got {raw!r}") from None
    if value != value:  # NaN
        raise HyperparameterError(f"hyperparameter {name}: expected a number, got {raw!r}")
    return value


def _str(name: str, raw: str) -> str:
    value = str(raw).strip()
    if not value:
        raise HyperparameterError(f"hyperparameter {name}: empty value")
    return value


def _bool(name: str, raw: str) -> bool:
    value = str(raw).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise HyperparameterError(f"hyperparameter {name}: expected true or false, got {raw!r}")


def _metrics(name: str, raw: Any) -> list[str]:
    if isinstance(raw, str) and raw.strip().startswith("["):
        import json

        try:  # a list passed through hyperparameters.json is JSON text
            raw = json.loads(raw)
        except ValueError:
            pass
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    if not out:
        raise HyperparameterError(f"hyperparameter {name}: empty value")
    return out


_Parser = Callable[[str, Any], Any]

# The SageMaker XGBoost algorithm's documented hyperparameters (version 1.7 / 3.0 containers).
KNOWN: dict[str, _Parser] = {
    "num_round": _int,
    "num_class": _int,
    "alpha": _float,
    "base_score": _float,
    "booster": _str,
    "colsample_bylevel": _float,
    "colsample_bynode": _float,
    "colsample_bytree": _float,
    "csv_weights": _int,
    "deterministic_histogram": _bool,
    "early_stopping_rounds": _int,
    "eta": _float,
    "eval_metric": _metrics,
    "gamma": _float,
    "grow_policy": _str,
    "interaction_constraints": _str,
    "lambda": _float,
    "lambda_bias": _float,
    "max_bin": _int,
    "max_cat_to_onehot": _int,
    "max_delta_step": _float,
    "max_depth": _int,
    "max_leaves": _int,
    "min_child_weight": _float,
    "monotone_constraints": _str,
    "normalize_type": _str,
    "nthread": _int,
    "num_parallel_tree": _int,
    "objective": _str,
    "one_drop": _int,
    "process_type": _str,
    "rate_drop": _float,
    "refresh_leaf": _int,
    "sample_type": _str,
    "sampling_method": _str,
    "scale_pos_weight": _float,
    "seed": _int,
    "single_precision_histogram": _bool,
    "sketch_eps": _float,
    "skip_drop": _float,
    "subsample": _float,
    "tree_method": _str,
    "tweedie_variance_power": _float,
    "updater": _str,
    "verbosity": _int,
}
# XGBoost's own spellings that notebooks use; mapped onto the names above.
ALIASES: dict[str, str] = {
    "learning_rate": "eta",
    "reg_alpha": "alpha",
    "reg_lambda": "lambda",
    "min_split_loss": "gamma",
    "random_state": "seed",
    "num_boost_round": "num_round",
    "n_jobs": "nthread",
}
# Accepted for compatibility with old notebooks; they change nothing in XGBoost >= 2.
_IGNORED = {"silent", "predictor", "dsplit", "save_model_on_termination", "use_dask_gpu_training"}
# Names the container knows but this trainer does not implement: refused, not silently ignored.
_UNSUPPORTED = {"_kfold": "cross-validation (_kfold)", "_num_cv_round": "cross-validation (_num_cv_round)"}
_RANGES: dict[str, tuple[float, float]] = {
    "num_round": (1, 1_000_000),
    "eta": (0.0, 1.0),
    "subsample": (1e-9, 1.0),
    "colsample_bytree": (1e-9, 1.0),
    "colsample_bylevel": (1e-9, 1.0),
    "colsample_bynode": (1e-9, 1.0),
    "max_depth": (0, 1000),
    "min_child_weight": (0.0, float("inf")),
    "gamma": (0.0, float("inf")),
    "alpha": (0.0, float("inf")),
    "lambda": (0.0, float("inf")),
    "scale_pos_weight": (0.0, float("inf")),
    "early_stopping_rounds": (1, 1_000_000),
    "nthread": (1, 4096),
    "num_class": (2, 1_000_000),
}


def parse(raw: Mapping[str, Any]) -> tuple[dict[str, Any], int, int | None]:
    """``(xgboost params, num_round, early_stopping_rounds or None)`` from SageMaker-style strings."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key.startswith("sagemaker_") or key in _IGNORED:
            continue
        if key in _UNSUPPORTED:
            raise HyperparameterError(f"hyperparameter {key}: {_UNSUPPORTED[key]} is not supported here")
        name = ALIASES.get(key, key)
        if name not in KNOWN:
            raise HyperparameterError(
                f"unknown hyperparameter {key!r} for the built-in XGBoost algorithm "
                "(docs/sagemaker.md lists the accepted names)"
            )
        if name in values:
            raise HyperparameterError(f"hyperparameter {name} given twice (as {key!r} and its alias)")
        parsed = KNOWN[name](key, value)
        low, high = _RANGES.get(name, (float("-inf"), float("inf")))
        if not isinstance(parsed, (int, float)) or isinstance(parsed, bool):
            pass
        elif not low <= parsed <= high:
            raise HyperparameterError(f"hyperparameter {key}: {parsed} is outside [{low:g}, {high:g}]")
        values[name] = parsed
    if "num_round" not in values:
        raise HyperparameterError("hyperparameter num_round is required (the number of boosting rounds)")
    rounds = int(values.pop("num_round"))
    early = values.pop("early_stopping_rounds", None)
    values.pop("csv_weights", None)  # a reading option, not an XGBoost parameter
    objective = values.setdefault("objective", "reg:squarederror")
    if objective.startswith("multi:") and "num_class" not in values:
        raise HyperparameterError(f"objective {objective} needs the hyperparameter num_class")
    values.setdefault("verbosity", 0)
    return values, rounds, early
