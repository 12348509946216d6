"""The SageMaker script contract: an unmodified AWS-style training script, every SM_* variable,
the config files, hyperparameters as arguments, model.tar.gz, describe(); and /opt/ml untouched."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from tallymark.jobs import TrainingJob

from conftest import write

# In the style of AWS's sklearn/XGBoost script-mode examples: argparse defaults from SM_* variables,
# hyperparameters as --key value, reads the train channel, saves a model (JSON, nothing pickled).
AWS_STYLE = """
import argparse, json, os

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.3)
    parser.add_argument("--objective", type=str, default="reg:squarederror")
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", type=str, default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args, _ = parser.parse_known_args()

    rows = []
    for name in sorted(os.listdir(args.train)):
        with open(os.path.join(args.train, name)) as f:
            rows += [line.strip().split(",") for line in f if line.strip()]
    mean = sum(float(r[0]) for r in rows) / len(rows)
    print(f"[0]#011train-rmse:{mean:.3f}")
    env = {k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINING_JOB_NAME"))}
    cfg = "/opt/ml/input/config"
    files = {n: json.load(open(os.path.join(cfg, n))) for n in sorted(os.listdir(cfg))}
    with open(os.path.join(args.model_dir, "model.json"), "w") as f:
        json.dump({"mean": mean, "max_depth": args.max_depth, "eta": args.eta}, f)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
        json.dump({"env": env, "files": files, "argv_validation": args.validation,
                   "cwd": os.getcwd(), "opt_ml": sorted(os.listdir("/opt/ml"))}, f)
"""


def test_an_unmodified_aws_style_script_trains_and_sees_the_contract(jobs_home, tmp_path):
    assert not Path("/opt/ml").exists()
    script = write(tmp_path / "src" / "train.py", AWS_STYLE)
    write(tmp_path / "data" / "train" / "part-0.csv", "1,0.5\n3,0.1\n")
    write(tmp_path / "data" / "validation" / "v.csv", "2,0.2\n")
    job = TrainingJob(
        entry_point=str(script),
        hyperparameters={"max_depth": 5, "eta": 0.2, "objective": "binary:logistic"},
        max_run=120,
        workspace="risk",
    )
    job.fit({"train": str(tmp_path / "data" / "train"), "validation": str(tmp_path / "data" / "validation")})

    assert job.status == "Completed", job.failure_reason
    assert job.exit_code == 0 and job.failure_reason is None
    name = job.job_name
    assert name.startswith("train-") and len(name.split("-")) == 8  # train-YYYY-MM-DD-HH-MM-SS-mmm
    root = jobs_home / "jobs" / name
    assert job.model_data == str(root / "output" / "model.tar.gz")
    with tarfile.open(job.model_data) as tar:
        assert tar.getnames() == ["model.json"]
        model = json.load(tar.extractfile("model.json"))
    assert model == {"mean": 2.0, "max_depth": 5, "eta": 0.2}  # hyperparameters came as --key value

    seen = json.loads((root / "output" / "data" / "seen.json").read_text())
    env = seen["env"]
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CHANNEL_VALIDATION"] == seen["argv_validation"] == "/opt/ml/input/data/validation"
    assert json.loads(env["SM_HPS"]) == {"max_depth": 5, "eta": 0.2, "objective": "binary:logistic"}
    assert env["SM_HP_MAX_DEPTH"] == "5" and env["SM_HP_OBJECTIVE"] == "binary:logistic"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_OUTPUT_FAILURE"] == "/opt/ml/output/failure"
    assert env["SM_OUTPUT_DIR"] == "/opt/ml/output" and env["SM_INPUT_DIR"] == "/opt/ml/input"
    assert env["SM_INPUT_CONFIG_DIR"] == "/opt/ml/input/config" and env["SM_MODULE_DIR"] == "/opt/ml/code"
    assert env["SM_CURRENT_HOST"] == "algo-1" and json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert int(env["SM_NUM_CPUS"]) == os.cpu_count()
    assert env["TRAINING_JOB_NAME"] == name
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["job_name"] == name
    assert training_env["channel_input_dirs"]["train"] == "/opt/ml/input/data/train"
    assert training_env["hyperparameters"]["max_depth"] == 5
    files = seen["files"]
    assert files["hyperparameters.json"] == {"max_depth": "5", "eta": "0.2", "objective": "binary:logistic"}
    assert set(files["inputdataconfig.json"]) == {"train", "validation"}
    assert files["resourceconfig.json"]["current_host"] == "algo-1"
    assert seen["cwd"] == "/opt/ml/code"
    assert {"code", "input", "model", "output"} <= set(seen["opt_ml"])

    d = job.describe()
    assert d["TrainingJobName"] == name and d["TrainingJobStatus"] == "Completed"
    assert d["SecondaryStatus"] == "Completed"
    assert d["HyperParameters"] == {"max_depth": "5", "eta": "0.2", "objective": "binary:logistic"}
    assert [c["ChannelName"] for c in d["InputDataConfig"]] == ["train", "validation"]
    assert d["ModelArtifacts"]["S3ModelArtifacts"] == job.model_data
    assert d["StoppingCondition"]["MaxRuntimeInSeconds"] == 120
    assert d["TrainingStartTime"] <= d["TrainingEndTime"]
    assert d["TrainingTimeInSeconds"] is not None and d["BillableTimeInSeconds"] is not None
    assert d["ExitCode"] == 0 and d["FailureReason"] is None
    assert d["ResourceConfig"]["InstanceCount"] == 1
    assert len(d["attempts"]) == 1 and d["attempts"][0]["status"] == "Completed"
    assert "[0]#011train-rmse:2.000" in job.logs()
    assert (root / "logs" / "output.log").read_text() == job.logs()
    assert not Path("/opt/ml").exists()  # the machine's /opt/ml was never created


def test_without_namespaces_a_script_using_only_sm_variables_runs(jobs_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TALLYMARK_JOB_NAMESPACE", "0")
    ok = write(
        tmp_path / "ok.py",
        "import os, pathlib\npathlib.Path(os.environ['SM_MODEL_DIR'], 'm.txt').write_text('x')\n",
    )
    job = TrainingJob(entry_point=str(ok), workspace="risk", max_run=60).fit()
    assert job.status == "Completed", job.failure_reason
    hard = write(tmp_path / "hard.py", "open('/opt/ml/model/m.txt', 'w').write('x')\n")
    job2 = TrainingJob(entry_point=str(hard), workspace="risk", max_run=60).fit()
    assert job2.status == "Failed"
    assert (
        "needs its own /opt/ml" in job2.failure_reason and "TALLYMARK_JOB_NAMESPACE=0" in job2.failure_reason
    )
    assert job2.logs() == ""  # it never ran


def test_source_dir_becomes_the_jobs_code_and_its_modules_import(jobs_home, tmp_path):
    src = tmp_path / "project"
    write(src / "helpers" / "__init__.py", "def answer():\n    return 42\n")
    write(
        src / "entry.py",
        "import os, helpers\nprint(helpers.answer(), sorted(os.listdir('.')))\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('x')\n",
    )
    job = TrainingJob(entry_point="entry.py", source_dir=str(src), workspace="risk", max_run=60).fit()
    assert job.status == "Completed", job.failure_reason
    assert job.logs() == "42 ['entry.py', 'helpers']\n"
    assert job.job_name.startswith("entry-")
