"""The demo's own pieces around the jobs: reading round lines, unpacking a job's model, evaluating
scores, and the CLI's refusals (no jobs started here; tests/test_demo_jobs.py runs the whole demo)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tallymark.demo.evaluate import evaluate_scores
from tallymark.demo.jobflow import JobFailed, extract_model, last_round

SRC = Path(__file__).resolve().parent.parent / "src"


def test_last_round_reads_sagemaker_style_lines() -> None:
    log = (
        "tallymark xgboost: 3486 training rows\n"
        "[1]#011train-auc:0.91000#011validation-auc:0.90000\n"
        "[2]\ttrain-auc:0.95000\tvalidation-auc:0.93000\n"
        "[12]#011train-auc:0.99000#011validation-aucpr:0.81000\n"
        "not a round [13] line\n"
    )
    assert last_round(log) == (12, "train-auc:0.99000  validation-aucpr:0.81000")
    assert last_round("") == (0, "")


def _tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


def test_extract_model_takes_only_the_two_named_files(tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "model.tar.gz",
        {"xgboost-model": b"UBJ", "./signature.json": b"{}", "../escape": b"x", "/etc/evil": b"x"},
    )
    out = extract_model(tarball, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["signature.json", "xgboost-model"]
    assert out["xgboost-model"].read_bytes() == b"UBJ"
    assert not (tmp_path / "escape").exists()

    linked = _tarball(tmp_path / "linked.tar.gz", {}, links={"xgboost-model": "/etc/passwd"})
    with pytest.raises(JobFailed, match="holds no xgboost-model"):
        extract_model(linked, tmp_path / "linked")


def test_evaluate_scores_matches_the_definitions() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.4, 0.05, 0.8])
    ev = evaluate_scores(y, s)
    assert ev.confusion_matrix == [[4, 1], [1, 2]]
    assert ev.metrics["test_precision"] == pytest.approx(2 / 3)
    assert ev.metrics["test_recall"] == pytest.approx(2 / 3)
    assert ev.metrics["test_f1"] == pytest.approx(2 / 3)
    # 15 positive/negative pairs, 14 ranked right (0.4 is below 0.6 only)
    assert ev.metrics["test_auc_roc"] == pytest.approx(14 / 15)
    assert 0.0 < ev.metrics["test_auc_pr"] <= 1.0
    assert set(ev.curves) == {"roc_curve", "pr_curve"} and ev.rows == 8
    assert set(evaluate_scores(y, s, prefix="validation").metrics) == {
        f"validation_{m}" for m in ("precision", "recall", "f1", "auc_roc", "auc_pr")
    }
    with pytest.raises(ValueError, match="8 labels but 7 scores"):
        evaluate_scores(y, s[:7])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "kubernetes"), "--backend kubernetes: choose one of local, dask"),
        (("--data", "/nonexistent/creditcard.csv"), "no such file"),
        (("--rows", "10"), "rows must be at least 1,000"),
    ],
)
def test_demo_cli_refuses_bad_options_clearly(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    env.update(PYTHONPATH=str(SRC), TALLYMARK_HOME=str(tmp_path / "home"), NO_COLOR="1", COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "tallymark", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr


def _wait_for_job(home: Path, match: Any, demo: subprocess.Popen[str] | None = None) -> dict[str, Any]:
    """The first job of the demo workspace that ``match``es, polling the store (the demo's home)."""
    from tallymark.sdk.transport import LocalTransport
    from tallymark.settings import ClientSettings

    t = LocalTransport(settings=ClientSettings.from_env(home=home))
    try:
        deadline = time.monotonic() + 180  # a bound against a hang, not a speed check
        while time.monotonic() < deadline:
            if (home / "tallymark.db").exists():
                for row in t.call("list_jobs", workspace="demo"):
                    job = t.call("get_job", workspace="demo", name=row["name"])
                    if match(job):
                        return job
            if demo is not None and demo.poll() is not None:
                raise AssertionError(f"the demo ended ({demo.returncode}) before a job matched")
            time.sleep(0.1)
        raise AssertionError("no job matched within 180 s")
    finally:
        t.close()


@pytest.mark.slow
def test_interrupting_the_demo_stops_its_running_job(tmp_path: Path) -> None:
    """Ctrl-C while the preprocessing job runs: the demo exits 130 and the job ends Stopped instead
    of running on detached (a local job's supervisor outlives the process that submitted it)."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    env.update(PYTHONPATH=str(SRC), TALLYMARK_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    demo = subprocess.Popen(
        [sys.executable, "-m", "tallymark", "demo"],  # full size: the preprocessing job runs for seconds
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background of a non-interactive shell inherits SIGINT ignored,
        # and Python keeps an ignored SIGINT: give the demo the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # while the script runs (not while its outputs upload: a stop then may come too late)
        running = _wait_for_job(
            home, lambda j: j["status"] == "InProgress" and j.get("secondary_status") == "Processing", demo
        )
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=120)
        assert demo.returncode == 130, stderr
        job = _wait_for_job(home, lambda j: j["name"] == running["name"] and j["status"] != "InProgress")
        assert job["status"] == "Stopped", job
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
