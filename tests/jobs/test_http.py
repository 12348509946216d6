"""A job against a real `tallymark server` (TALLYMARK_URL): its row, logs and stop go over REST."""

from __future__ import annotations

import time

from tallymark.jobs import TrainingJob

from conftest import write
from servers import ServerProcess


def test_a_job_submitted_to_a_server_reports_and_stops_over_http(jobs_home, tmp_path, monkeypatch):
    with ServerProcess(tmp_path / "srv") as srv:
        monkeypatch.setenv("TALLYMARK_URL", srv.url)
        script = write(
            tmp_path / "t.py",
            "import os, time\nprint('hello \\u00e9', flush=True)\n"
            "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.json'), 'w').write('{}')\n",
        )
        job = TrainingJob(entry_point=str(script), workspace="risk", max_run=60).fit()
        assert job.status == "Completed", job.failure_reason
        assert job.logs() == "hello \u00e9\n"
        assert job.transport.kind == "http"
        assert (jobs_home / "jobs" / job.job_name / "output" / "model.tar.gz").exists()
        slow = write(tmp_path / "slow.py", "import time\nprint('waiting', flush=True)\ntime.sleep(600)\n")
        job2 = TrainingJob(entry_point=str(slow), workspace="risk", max_run=600, stop_grace=1).fit(wait=False)
        while "waiting" not in job2.logs():
            time.sleep(0.1)
        job2.stop()
        assert job2.wait(timeout=60) == "Stopped"
        assert job2.logs() == "waiting\n"
