"""The local backend's promises: failures with exit code and reason, max_run (TimedOut, SIGKILL
after the grace), stop from another process (Stopped, no tail lost), retries keeping the job,
100 MB of output (capped log, nothing hangs), an empty model dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tallymark.jobs import ProcessingJob, TrainingJob

from conftest import write


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tallymark", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_a_script_that_exits_1_is_failed_with_its_failure_file_or_stderr(jobs_home, tmp_path):
    told = write(
        tmp_path / "told.py",
        "import os, sys\nprint('working')\n"
        "open(os.environ['SM_OUTPUT_FAILURE'], 'w').write('AlgorithmError: label column missing')\n"
        "sys.exit(1)\n",
    )
    job = TrainingJob(entry_point=str(told), workspace="risk", max_run=60).fit()
    assert (job.status, job.exit_code) == ("Failed", 1)
    assert job.failure_reason == "AlgorithmError: label column missing"
    assert job.logs() == "working\n"
    crash = write(tmp_path / "crash.py", "import os\nprint(os.environ['SM_CHANNEL_VALIDATION'])\n")
    job = TrainingJob(entry_point=str(crash), workspace="risk", max_run=60).fit({"train": str(tmp_path)})
    assert (job.status, job.exit_code) == ("Failed", 1)  # an unknown channel: the script's KeyError
    assert job.failure_reason.startswith("the script exited with code 1:")
    assert "KeyError: 'SM_CHANNEL_VALIDATION'" in job.failure_reason
    assert "Traceback" in job.logs()


def test_max_run_ends_a_script_that_never_ends_even_if_it_ignores_sigterm(jobs_home, tmp_path):
    forever = write(
        tmp_path / "forever.py",
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('ignoring SIGTERM', flush=True))\n"
        "print('started', flush=True)\nwhile True:\n    time.sleep(0.05)\n",
    )
    job = TrainingJob(entry_point=str(forever), workspace="risk", max_run=2, stop_grace=1).fit()
    assert job.status == "TimedOut"
    assert job.exit_code == 128 + 9  # SIGKILL after the grace
    assert "max_run=2s" in job.failure_reason
    assert job.logs() == "started\nignoring SIGTERM\n"
    assert job.describe()["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_stop_from_another_process_and_logs_follow(jobs_home, tmp_path):
    loop = write(
        tmp_path / "loop.py",
        "import time\nfor i in range(100000):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n",
    )
    job = ProcessingJob(str(loop), workspace="risk", max_run=600, stop_grace=2).run(wait=False)
    while "tick 3" not in job.logs():
        time.sleep(0.1)
    follower = subprocess.Popen(
        [sys.executable, "-m", "tallymark", "jobs", "logs", "risk", job.job_name, "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        listed = _cli("jobs", "list", "risk")
        assert job.job_name in listed.stdout and "InProgress" in listed.stdout
        stopped = _cli("jobs", "stop", "risk", job.job_name)
        assert stopped.returncode == 0, stopped.stderr
        assert "Stopped" in stopped.stdout
        out, _ = follower.communicate(timeout=60)  # -f ends with the job
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert job.status == "Stopped" and job.failure_reason == "stopped on request"
    logs = job.logs()
    last = logs.strip().splitlines()[-1]
    assert out == logs and last.startswith("tick")
    root_log = (jobs_home / "jobs" / job.job_name / "logs" / "output.log").read_text()
    assert root_log == logs  # nothing of the tail lost
    shown = _cli("jobs", "show", "risk", job.job_name)
    assert "Stopped" in shown.stdout and "stopped on request" in shown.stdout


def test_retries_keep_the_job_and_record_the_attempts(jobs_home, tmp_path):
    counter = tmp_path / "count"
    flaky = write(
        tmp_path / "flaky.py",
        f"import os, pathlib, sys\np = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\np.write_text(str(n))\nprint('attempt', n)\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], 'm.json').write_text('{}')\nsys.exit(0 if n == 2 else 3)\n",
    )
    job = TrainingJob(entry_point=str(flaky), workspace="risk", retries=2, max_run=60).fit()
    assert job.status == "Completed", job.failure_reason
    info = job.refresh()
    assert info["attempt"] == 2 and info["max_attempts"] == 3
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in info["attempts"]] == [
        (1, "Failed", 3),
        (2, "Completed", 0),
    ]
    assert "attempt 1\n" in job.logs() and "attempt 2\n" in job.logs()


def test_an_empty_model_dir_fails_the_training_job(jobs_home, tmp_path):
    nothing = write(tmp_path / "nothing.py", "print('trained, saved nothing')\n")
    job = TrainingJob(entry_point=str(nothing), workspace="risk", max_run=60).fit()
    assert (job.status, job.exit_code) == ("Failed", 0)
    assert "model directory /opt/ml/model (SM_MODEL_DIR) is empty" in job.failure_reason
    assert job.model_data is None


def test_100_mb_of_output_finishes_with_the_log_capped(jobs_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TALLYMARK_JOB_LOG_MAX_BYTES", str(1 << 20))
    loud = write(
        tmp_path / "loud.py",
        "import sys\nline = b'x' * 1023 + b'\\n'\nsys.stdout.buffer.write(b'FIRST\\n')\n"
        "for i in range(100 * 1024):\n    sys.stdout.buffer.write(line)\n"
        "sys.stdout.buffer.write(b'LAST\\n')\n",
    )
    job = ProcessingJob(str(loud), workspace="risk", max_run=300).run()
    assert job.status == "Completed", job.failure_reason
    info = job.refresh()
    total = 100 * 1024 * 1024 + len("FIRST\nLAST\n")
    assert info["log_bytes"] == total
    assert info["log_dropped"] > total - (2 << 20)
    logs = job.logs()
    assert logs.startswith("FIRST\n") and logs.endswith("LAST\n")
    assert f"{info['log_dropped']:,} bytes of output left out here" in logs
    assert len(logs) < 2 << 20
    assert (jobs_home / "jobs" / job.job_name / "logs" / "output.log").stat().st_size == total


def test_a_job_outlives_the_process_that_submitted_it(jobs_home, tmp_path):
    script = write(
        tmp_path / "later.py",
        f"import os, time\nwhile not os.path.exists({str(tmp_path / 'go')!r}):\n    time.sleep(0.05)\n"
        "print('still here')\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('x')\n",
    )
    submit = (
        "from tallymark.jobs import TrainingJob\n"
        f"j = TrainingJob(entry_point={str(script)!r}, workspace='risk', max_run=60).fit(wait=False)\n"
        "print(j.job_name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", submit], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    job = TrainingJob.attach(done.stdout.strip(), workspace="risk")
    assert job.status == "InProgress"  # the submitting process has exited; the job runs on
    (tmp_path / "go").touch()
    assert job.wait(timeout=60) == "Completed"
    assert job.logs() == "still here\n"
