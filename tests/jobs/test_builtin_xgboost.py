"""The built-in XGBoost trainer under the SageMaker contract: run as a plain child process with the
SM_* variables a job sets (the runner adds nothing else), and in-process for the bad-input cases."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from builtin_data import (
    PYTHON,
    TRAINER,
    child_env,
    imbalanced,
    sm_env,
    write_csv,
    write_libsvm,
    write_parquet,
)

HPS = {
    "objective": "binary:logistic",
    "num_round": 20,
    "eval_metric": "auc,aucpr",
    "eta": "0.3",
    "max_depth": "4",
    "seed": "7",
    "nthread": "1",
}


def _run(root: Path, channels: dict[str, Path], hps: dict, extra: dict[str, str] | None = None):
    env = child_env({**sm_env(root, channels, hps), **(extra or {})})
    return subprocess.run([PYTHON, str(TRAINER)], env=env, capture_output=True, text=True, timeout=120)


def _booster(path: Path):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))  # raw bytes: UBJ, never a pickle
    return booster


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def test_csv_trains_writes_model_signature_and_metrics(tmp_path: Path) -> None:
    import xgboost as xgb

    X, y = imbalanced()
    write_csv(tmp_path / "data" / "train", X[:2400], y[:2400])
    write_csv(tmp_path / "data" / "validation", X[2400:], y[2400:])
    channels = {"train": tmp_path / "data" / "train", "validation": tmp_path / "data" / "validation"}
    done = _run(tmp_path / "a", channels, HPS)
    assert done.returncode == 0, done.stderr

    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == 20
    assert re.fullmatch(
        r"\[1\]#011train-auc:[0-9.]+#011train-aucpr:[0-9.]+#011validation-auc:[0-9.]+"
        r"#011validation-aucpr:[0-9.]+",
        lines[0],
    )
    rounds = [
        json.loads(ln)
        for ln in (tmp_path / "a" / "output" / "data" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["round"] for r in rounds] == list(range(1, 21))
    assert set(rounds[-1]) == {"round", "train-auc", "train-aucpr", "validation-auc", "validation-aucpr"}

    signature = json.loads((tmp_path / "a" / "model" / "signature.json").read_text())
    assert signature["inputs"] == [{"name": f"f{i}", "type": "double"} for i in range(6)]
    assert signature["outputs"] == [{"name": "score", "type": "double"}]

    model = tmp_path / "a" / "model" / "xgboost-model"
    assert model.read_bytes()[:1] == b"{"  # UBJ opens with an object marker, like JSON
    booster = _booster(model)
    # The reported last-round validation AUC is the AUC of the saved model's own predictions.
    scores = booster.predict(xgb.DMatrix(X[2400:]))
    assert _auc(y[2400:], scores) == pytest.approx(rounds[-1]["validation-auc"], abs=1e-6)

    # Same seed, same data: the same model, byte for byte (run again in-process: cheaper).
    from tallymark.jobs.builtin import xgboost_train

    assert xgboost_train.run(sm_env(tmp_path / "b", channels, HPS), []) == 0
    assert (tmp_path / "b" / "model" / "xgboost-model").read_bytes() == model.read_bytes()


def test_parquet_keeps_column_names_and_types(tmp_path: Path) -> None:
    from tallymark.jobs.builtin import xgboost_train

    X, y = imbalanced(rows=800, features=3)
    write_parquet(tmp_path / "train", X, y)
    env = sm_env(tmp_path / "job", {"train": tmp_path / "train"}, {**HPS, "num_round": 3})
    assert xgboost_train.run(env, []) == 0
    signature = json.loads((tmp_path / "job" / "model" / "signature.json").read_text())
    assert signature["inputs"] == [
        {"name": "V1", "type": "double"},
        {"name": "V2", "type": "double"},
        {"name": "V3", "type": "double"},
        {"name": "Count", "type": "long"},
        {"name": "Flag", "type": "boolean"},
    ]
    booster = _booster(tmp_path / "job" / "model" / "xgboost-model")
    assert booster.feature_names == ["V1", "V2", "V3", "Count", "Flag"]


def test_libsvm_and_content_type_from_channel_config(tmp_path: Path) -> None:
    from tallymark.jobs.builtin import xgboost_train

    X, y = imbalanced(rows=600, features=4)
    write_libsvm(tmp_path / "train", X, y, name="part-0000")  # no extension: the config says what it is
    env = sm_env(
        tmp_path / "job", {"train": tmp_path / "train"}, {**HPS, "num_round": 3, "eval_metric": "logloss"}
    )
    env["SM_INPUT_DATA_CONFIG"] = json.dumps({"train": {"ContentType": "text/libsvm"}})
    assert xgboost_train.run(env, []) == 0
    signature = json.loads((tmp_path / "job" / "model" / "signature.json").read_text())
    assert [f["name"] for f in signature["inputs"]] == ["f0", "f1", "f2", "f3"]
    rounds = (tmp_path / "job" / "output" / "data" / "metrics.jsonl").read_text().splitlines()
    assert set(json.loads(rounds[-1])) == {"round", "train-logloss"}


def test_hyperparameters_json_and_early_stopping(tmp_path: Path) -> None:
    from tallymark.jobs.builtin import xgboost_train

    X, y = imbalanced(rows=1500)
    write_csv(tmp_path / "train", X[:1000], y[:1000])
    write_csv(tmp_path / "validation", X[1000:], y[1000:])
    env = sm_env(tmp_path / "job", {"train": tmp_path / "train", "validation": tmp_path / "validation"})
    config = tmp_path / "job" / "input" / "config"
    config.mkdir(parents=True)
    hps = {**HPS, "num_round": "300", "eta": "0.9", "early_stopping_rounds": "3", "eval_metric": "logloss"}
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hps.items()}))
    assert xgboost_train.run(env, []) == 0
    rounds = [
        json.loads(ln)
        for ln in (tmp_path / "job" / "output" / "data" / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(rounds) < 300  # stopped early
    best = min(range(len(rounds)), key=lambda i: rounds[i]["validation-logloss"])
    assert len(rounds) == best + 1 + 3  # three rounds without improvement, then stop
    booster = _booster(tmp_path / "job" / "model" / "xgboost-model")
    assert booster.num_boosted_rounds() == best + 1  # the saved model is cut at the best round


def _write_header_csv(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("Class,V1,V2\n0,1.0,2.0\n1,0.5,0.1\n")


BAD = [
    (
        "unknown content type",
        {"SM_INPUT_DATA_CONFIG": json.dumps({"train": {"ContentType": "image/png"}})},
        {},
        "content type 'image/png' is not one",
    ),
    ("unknown extension", {}, {"file": "data.bin"}, "cannot tell the content type of 'data.bin'"),
    ("empty channel", {}, {"file": None}, "channel 'train' is empty"),
    ("label not binary", {}, {"label": 2}, "needs labels 0 or 1, row 1 has 2"),
    ("unknown hyperparameter", {}, {"hp": {"max_dept": "3"}}, "unknown hyperparameter 'max_dept'"),
    ("bad hyperparameter value", {}, {"hp": {"max_depth": "deep"}}, "max_depth: expected an integer"),
    ("no num_round", {}, {"drop": "num_round"}, "num_round is required"),
    ("csv header", {}, {"header": True}, "not numeric CSV without a header"),
    ("ragged csv", {}, {"ragged": True}, "cannot read a.csv as CSV: Error tokenizing data"),
]


@pytest.mark.parametrize(("case", "env_extra", "how", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_writes_failure_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, env_extra: dict, how: dict, message: str
) -> None:
    from tallymark.jobs.builtin import xgboost_train

    X, y = imbalanced(rows=50, features=2)
    train = tmp_path / "train"
    if how.get("header"):
        _write_header_csv(train)
    elif how.get("ragged"):
        train.mkdir()
        (train / "a.csv").write_text("0,1.0,2.0\n1,0.5,0.1,7\n")
    elif "file" in how:
        train.mkdir()
        if how["file"]:
            (train / how["file"]).write_text("1,2,3\n")
    else:
        y = y.copy()
        if "label" in how:
            y[0] = how["label"]
        write_csv(train, X, y)
    hps = {**HPS, **how.get("hp", {})}
    hps.pop(how.get("drop", ""), None)
    root = tmp_path / "job"
    for key, value in {**sm_env(root, {"train": train}, hps), **env_extra}.items():
        monkeypatch.setenv(key, value)
    assert xgboost_train.main([]) == 1
    reason = (root / "output" / "failure").read_text()
    assert message in reason
    assert not (root / "model" / "xgboost-model").exists()


def test_bad_hyperparameter_is_the_jobs_failure_reason(home: Path, tmp_path: Path) -> None:
    from tallymark.jobs import TrainingJob

    X, y = imbalanced(rows=50, features=2)
    write_csv(tmp_path / "train", X, y)
    job = TrainingJob(algorithm="xgboost", hyperparameters={"num_round": 2, "max_dept": 3}, workspace="risk")
    job.fit({"train": str(tmp_path / "train")})
    assert job.status == "Failed"
    assert job.exit_code == 1
    assert job.failure_reason.startswith("unknown hyperparameter 'max_dept'")
    assert "unknown hyperparameter 'max_dept'" in job.logs()  # also on stderr, in the job's log


def test_docs_list_every_hyperparameter_and_alias() -> None:
    from tallymark.jobs.builtin.hyperparams import ALIASES, KNOWN

    text = (Path(__file__).resolve().parents[2] / "docs" / "sagemaker.md").read_text()
    missing = [name for name in [*KNOWN, *ALIASES] if f"`{name}`" not in text]
    assert not missing, f"add to docs/sagemaker.md: {missing}"


def test_hyperparameters_as_sagemaker_passes_them() -> None:
    from tallymark.jobs.builtin.hyperparams import HyperparameterError, parse

    params, rounds, early = parse(
        {
            "num_round": "100",
            "learning_rate": "0.15",
            "eval_metric": '["auc", "aucpr"]',  # a list, as hyperparameters.json holds one
            "max_depth": "5.0",
            "subsample": 0.8,
            "early_stopping_rounds": "10",
            "sagemaker_program": "train.py",
            "silent": "1",
        }
    )
    assert (rounds, early) == (100, 10)
    assert params == {
        "eta": 0.15,
        "eval_metric": ["auc", "aucpr"],
        "max_depth": 5,
        "subsample": 0.8,
        "objective": "reg:squarederror",
        "verbosity": 0,
    }
    for bad, message in [
        ({"num_round": "5", "eta": "0.1", "learning_rate": "0.2"}, "given twice"),
        ({"num_round": "0"}, "outside [1, 1e+06]"),
        ({"num_round": "5", "subsample": "1.5"}, "subsample: 1.5 is outside"),
        ({"num_round": "5", "objective": "multi:softmax"}, "needs the hyperparameter num_class"),
        ({"num_round": "5", "_kfold": "5"}, "cross-validation"),
    ]:
        with pytest.raises(HyperparameterError, match=re.escape(message)):
            parse(bad)
