"""Notebooks written for ``comet_ml`` run unchanged against ``tallymark server``.

Each test runs the real comet-ml SDK in a subprocess (see conftest.py), asserts it printed no
``COMET ERROR`` line, then reads what it logged through tallymark's own ``API`` and compares value by
value: parameters, metric points with step and epoch, the confusion matrix, curves, artifact versions,
aliases and files, lineage (consumed / produced / registered from), registry versions and statuses.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.comet]

WS = "risk-team"


def _points(api_exp, name):
    return [(p["step"], p["epoch"], p["metricValue"]) for p in api_exp.get_metrics(name)]


def _edges(api_exp):
    return {(e["src"], e["relation"], e["dst"]) for e in api_exp.get_lineage()["edges"]}


def test_reference_workflow(comet, tallymark_api, tmp_path):
    run = comet.notebook("fraud_notebook.py", WS, "fraud-detection", str(tmp_path / "work"))
    assert run.error_lines == []
    r = run.result
    key, prep_key = r["key"], r["prep_key"]

    exp = tallymark_api.get_experiment(WS, "fraud-detection", key)
    assert exp.name == "xgb-baseline" and exp.status == "ended"
    assert set(exp.get_tags()) == {"baseline", "xgboost"}

    # parameters, value by value; nested ones as tallymark names them (split.test_size)
    params = {p["name"]: p["valueCurrent"] for p in exp.get_parameters_summary()}
    for name, value in r["params"].items():
        assert params[name] == value, name
    assert params["split.test_size"] == 0.3 and params["split.val_size"] == 0.2
    assert params["num_round"] == 6

    # every metric point the notebook logged, with its step and epoch, bit for bit
    for name in {m[0] for m in r["metrics"]}:
        logged = [(step, epoch, value) for n, step, epoch, value in r["metrics"] if n == name]
        assert _points(exp, name) == logged, name

    # what Comet's API read back (metric values as strings) is the same data
    comet_points = {(n, s, e): v for n, s, e, v in r["comet_metrics"]}
    for name, step, epoch, value in r["metrics"]:
        assert float(comet_points[(name, step, epoch)]) == value
    assert r["comet_params"]["split|test_size"] == "0.3"  # nested parameters as Comet wrote them
    assert r["comet_params"]["learning_rate"] == "0.15" and r["comet_name"] == "xgb-baseline"

    (cm,) = exp.get_confusion_matrices()
    assert cm["matrix"] == r["confusion_matrix"] and cm["labels"] == ["Normal", "Fraud"]
    (curve,) = exp.get_curves()
    assert curve["name"] == "roc_curve"
    assert curve["x"] == r["roc_curve"]["x"] and curve["y"] == r["roc_curve"]["y"]
    others = {o["name"]: o["valueCurrent"] for o in exp.get_others_summary()}
    assert others["model_description"] == "notebook defaults"
    assert any(c["file_name"] == "fraud_notebook.py" for c in exp.get_code())
    assert (exp.get_environment() or {}).get("python", {}).get("version")
    assert any(p["name"] == "numpy" for p in exp.get_packages())

    # the artifact: one version with its alias, a remote and a local file, produced by the prep run
    art = tallymark_api.get_artifact(WS, "creditcard-fraud", "raw")
    assert art.version == r["artifact_seen"]["version"] == "1.0.0"
    assert art.aliases == ["raw"] == r["artifact_seen"]["aliases"]
    assert art.metadata == {"rows": 3000, "frauds": art.metadata["frauds"], "schema": "kaggle-creditcard"}
    files = {f["logicalPath"]: f for f in art.assets}
    assert sorted(files) == r["artifact_seen"]["files"] == ["creditcard.csv", "sample/creditcard_head.csv"]
    assert files["creditcard.csv"]["uri"] == "s3://fraud-data/creditcard.csv"
    sample = (tmp_path / "work" / "creditcard_head.csv").read_bytes()
    assert files["sample/creditcard_head.csv"]["sha256"] == hashlib.sha256(sample).hexdigest()
    assert art.source_experiment_key == prep_key

    # lineage: prep produced the version, training consumed it and registered the model from it
    ref = "artifact:risk-team/creditcard-fraud:1.0.0"
    assert (f"experiment:{prep_key}", "produced", ref) in _edges(
        tallymark_api.get_experiment_by_key(prep_key)
    )
    edges = _edges(exp)
    assert (ref, "consumed", f"experiment:{key}") in edges
    assert (f"experiment:{key}", "registered_from", "model:risk-team/fraud-xgb:1.0.0") in edges

    # the remote model and its registry version, moved to Staging by Comet's API
    (model,) = exp.get_logged_models()
    assert model["name"] == "fraud-xgb" and model["remoteUri"] == "s3://fraud-models/fraud-xgb/model.json"
    assert model["metadata"] == {"framework": "xgboost"}
    m = tallymark_api.get_model(WS, "fraud-xgb")
    assert m.find_versions() == r["versions"] == ["1.0.0"]
    details = m.get_details("1.0.0")
    assert details["status"] == "staging" and r["status"] == "Staging"
    assert details["experimentKey"] == key and details["remoteUri"] == model["remoteUri"]
    assert [h["to"] for h in details["history"]] == ["development", "staging"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_typical_notebook_resumed_with_existing_experiment(comet, tallymark_api, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "notebook.py"
    shutil.copy(Path(__file__).parent / "fixtures" / "typical_notebook.py", script)
    has_git = shutil.which("git") is not None
    if has_git:
        (repo / "tracked.py").write_text("x = 1\n")
        _git(repo, "init", "-q")
        _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
        _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init")
        (repo / "tracked.py").write_text("x = 2\n")  # uncommitted: becomes the git patch
    work = tmp_path / "work"
    first = comet.run([str(script), "start", WS, "typical", str(work)], cwd=repo)
    assert first.error_lines == []
    key = first.result["key"]
    second = comet.run([str(script), "resume", key, str(work)], cwd=repo)
    assert second.error_lines == []
    r = second.result

    exp = tallymark_api.get_experiment_by_key(key)
    assert exp.status == "ended" and exp.name == "typical-run" and exp.get_tags() == ["typical"]
    params = {p["name"]: p["valueCurrent"] for p in exp.get_parameters_summary()}
    assert params["lr"] == 0.01 and params["optimizer.name"] == "adam" and params["optimizer.beta1"] == 0.9
    assert params["layers"] == [64, 32] and params["resumed"] is True
    # without a step, points count 0, 1, 2 (tallymark's rule); the resumed session added step 30
    assert [(s, v) for s, _, v in _points(exp, "loss")] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert _points(exp, "acc") == [(10, 1, 0.1), (20, 1, 0.2), (30, 2, 0.3)]
    (weird,) = _points(exp, "weird")
    assert math.isnan(weird[2])
    assert _points(exp, "big") == [(1, 1, 2**53 + 1)]  # integers stay exact (Comet adds the epoch)
    others = {o["name"]: o["valueCurrent"] for o in exp.get_others_summary()}
    assert others["seed"] == 42 and others["note"] == "first session"

    assert {c["file_name"] for c in exp.get_code()} >= {"notebook.py", "snippet.py"}
    (table,) = exp.get_tables()
    assert table["columns"] == ["id", "name", "score"] and table["rows"] == [[1, "x", 2.5], [2, "y", 3.5]]
    assets = {a["fileName"]: a for a in exp.get_asset_list()}
    features = (work / "features.json").read_bytes()
    assert assets["features.json"]["sha256"] == hashlib.sha256(features).hexdigest()
    assert "table.csv" in assets and any(n.startswith("text-sample") for n in assets)
    assert "hello from the notebook" in exp.get_stdout()
    (model,) = exp.get_logged_models()
    assert model["name"] == "local-model"
    assert {f["logicalPath"]: f["size"] for f in model["files"]} == {
        "model/weights.bin": 1024,
        "model/config.json": 13,
    }

    # the artifact: downloaded by the resumed run (consumed), alias "best" added with update_aliases
    assert r["downloaded"] == "a,b\n1,2\n3,4\n" and r["artifact_version"] == "1.0.0"
    art = tallymark_api.get_artifact(WS, "train-data", "best")
    assert art.version == "1.0.0" and sorted(art.aliases) == ["best", "v1"]
    ref = "artifact:risk-team/train-data:1.0.0"
    assert {(f"experiment:{key}", "produced", ref), (ref, "consumed", f"experiment:{key}")} <= _edges(exp)

    # what comet_ml.API read back
    assert r["name"] == "typical-run" and r["tags"] == ["typical"]
    assert r["others"]["seed"] == "42" and r["others"]["Name"] == "typical-run"
    assert r["acc"] == [[10, 1, "0.1"], [20, 1, "0.2"], [30, 2, "0.3"]]
    assert r["loss"] == [[0, "1.0"], [1, "0.5"], [2, repr(1.0 / 3)]]
    assert r["metrics_summary"]["big"] == str(2**53 + 1) and r["metrics_summary"]["weird"] == "NaN"
    assert r["params"]["optimizer|name"] == "adam" and r["params"]["resumed"] == "true"
    assert {"features.json", "table.csv"} <= set(r["assets"])
    assert r["features"] == (work / "features.json").read_text() and r["output_has_hello"]
    assert r["metadata"] == {"workspaceName": WS, "projectName": "typical", "running": False}
    if has_git:
        git = exp.get_git()
        assert git["branch"] in ("master", "main") and len(git["commit"]) == 40
        assert "-x = 1" in git["diff"] and "+x = 2" in git["diff"] and git["is_dirty"] is True
        assert r["git"]["parent"] == git["commit"] and "+x = 2" in r["patch"]


def _check_offline(exp, run_dir: Path) -> None:
    assert exp.status == "ended" and exp.name == "offline-run"
    assert sorted(exp.get_tags()) == ["comet", "offline"]
    params = {p["name"]: p["valueCurrent"] for p in exp.get_parameters_summary()}
    assert params["lr"] == 0.1 and params["trees.depth"] == 3
    assert _points(exp, "loss") == [(s, 0, 1.0 / (s + 1)) for s in range(4)]
    assert _points(exp, "auc") == [(3, 0, 0.875)]  # Comet adds the current epoch
    others = {o["name"]: o["valueCurrent"] for o in exp.get_others_summary()}
    assert others["rows"] == 10
    (cm,) = exp.get_confusion_matrices()
    assert cm["matrix"] == [[50, 2], [3, 9]] and cm["labels"] == ["Normal", "Fraud"]
    (curve,) = exp.get_curves()
    assert curve["name"] == "pr_curve" and curve["x"] == [0.0, 0.5, 1.0] and curve["y"] == [1.0, 0.7, 0.0]
    (asset,) = [a for a in exp.get_asset_list() if a["fileName"] == "notes.txt"]
    assert exp.get_asset(asset["assetId"]) == (run_dir / "notes.txt").read_bytes()
    (model,) = exp.get_logged_models()
    assert model["name"] == "offline-model" and model["remoteUri"] == "s3://models/offline.bin"
    assert any(c["file_name"] == "offline_notebook.py" for c in exp.get_code())


def test_offline_archive_uploaded_with_comet_upload_and_tallymark_upload(
    comet, tallymark_api, tmp_path, monkeypatch
):
    offline = tmp_path / "offline"
    offline.mkdir()
    run = comet.notebook("offline_notebook.py", WS, "offline", str(offline))
    assert run.error_lines == []
    key, archive = run.result["key"], Path(run.result["zip"])
    assert archive.is_file()

    # 1. `comet upload KEY.zip` replays it through the wire protocol into the server
    up = comet.run(["comet", "upload", str(archive)], expect_result=False)
    assert up.error_lines == [] and "Number of uploaded experiments: 1" in up.output
    _check_offline(tallymark_api.get_experiment(WS, "offline", key), offline)
    again = comet.run(["comet", "upload", str(archive)], expect_result=False, check=False)  # refused twice
    assert "already uploaded" in again.output

    # 2. tallymark's upload path imports the same archive into an embedded home, twice (idempotent)
    import tallymark
    from tallymark.sdk.transport import LocalTransport
    from tallymark.server.compat.comet.offline import is_comet_archive, replay_comet_archive

    assert is_comet_archive(archive)
    home = tmp_path / "home"
    for _ in range(2):
        t = LocalTransport(home)
        try:
            assert replay_comet_archive(archive, t) == key
        finally:
            t.close()
    monkeypatch.delenv("TALLYMARK_URL")
    monkeypatch.setenv("TALLYMARK_HOME", str(home))
    local = tallymark.API()
    try:
        _check_offline(local.get_experiment(WS, "offline", key), offline)
    finally:
        local.close()


def test_registry_statuses_and_four_eyes(comet, tallymark_api, monkeypatch):
    run = comet.notebook("registry_notebook.py", "promote", WS, "registry", "churn-model")
    assert run.error_lines == []
    r = run.result
    assert r["allowed"] == ["Development", "Staging", "Production", "Archived"]
    assert r["version"] == "1.0.0" and r["staging"] == "Staging" and r["after"] == "Staging"
    assert r["tags"] == ["candidate"]
    # Production by the same identity is not applied: a pending request, and a clear 403 saying so
    assert "403" in r["error"] and "four eyes" in r["error"] and "tallymark models approve" in r["error"]
    m = tallymark_api.get_model(WS, "churn-model")
    (req,) = m.get_requests("pending")
    assert req["toStatus"] == "production" and f"#{req['id']}" in r["error"]
    assert m.get_details("1.0.0")["status"] == "staging"

    # another person approves it with tallymark; Comet's API then reads Production
    import tallymark

    approver = tallymark.API(settings=tallymark_api.settings.with_overrides(user="approver"))
    approver.get_model(WS, "churn-model").approve(req["id"], comment="reviewed")
    approver.close()
    assert m.get_details("1.0.0")["status"] == "production"
    status = comet.notebook("registry_notebook.py", "status", WS, "churn-model", "1.0.0")
    assert status.error_lines == [] and status.result == {"status": "Production"}
