"""The local backend: each job supervised by a detached process on this machine.

``python -m tallymark.jobs.supervisor ROOT`` is started in its own session (a Ctrl-C in the
notebook or terminal does not reach it), so the job survives the process that submitted it;
its stop and status go through the store. Its own errors go to ``ROOT/logs/supervisor.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tallymark.jobs.spec import JobSpec

__all__ = ["LocalBackend", "LocalHandle"]


class LocalHandle:
    """The supervisor process of a local job (reaped by a thread, so it never lingers as a zombie)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._reaper = threading.Thread(target=proc.wait, name="tallymark-job-reaper", daemon=True)
        self._reaper.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> bool:
        return self.proc.poll() is not None

    def wait(self, timeout: float | None = None) -> bool:
        self._reaper.join(timeout)
        return not self._reaper.is_alive()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)  # the supervisor stops the job, then records it
            except ProcessLookupError:
                pass


class LocalBackend:
    name = "local"

    def submit(self, spec: JobSpec, job_root: Path, settings: dict[str, Any]) -> LocalHandle:
        from tallymark.jobs.supervisor import SINK_ENV

        root = Path(job_root)
        (root / "logs").mkdir(parents=True, exist_ok=True)
        (root / "spec.json").write_text(json.dumps(spec.to_dict()))
        env = dict(os.environ)
        env[SINK_ENV] = json.dumps(settings)
        # The supervisor imports this very tallymark, however this process found it.
        src = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with (root / "logs" / "supervisor.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tallymark.jobs.supervisor", str(root)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        return LocalHandle(proc)
