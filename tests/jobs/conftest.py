"""Fixtures of the jobs tests: an isolated home whose job processes are always ended afterwards."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _job_processes(marker: str) -> list[int]:
    """Pids of processes whose command line names ``marker`` (the test's home): supervisors, scripts."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            found.append(int(d.name))
    return found


@pytest.fixture
def jobs_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded home for jobs (TALLYMARK_HOME), and a finalizer that stops every job still
    running and kills the process groups of any job process left (none should be)."""
    h = tmp_path / "jobhome"
    monkeypatch.setenv("TALLYMARK_HOME", str(h))
    monkeypatch.delenv("TALLYMARK_URL", raising=False)
    monkeypatch.setenv("TALLYMARK_USER", "alice")
    monkeypatch.setenv("TALLYMARK_WORKSPACE", "risk")
    yield h
    from tallymark.sdk.transport import LocalTransport

    if (h / "tallymark.db").exists():
        t = LocalTransport(h)
        try:
            running = [
                j for j in t.call("list_jobs", workspace="risk", limit=1000) if j["status"] == "InProgress"
            ]
            for j in running:
                t.call("stop_job", workspace="risk", name=j["name"])
        except Exception:
            pass
        finally:
            t.close()
    end = time.monotonic() + 20
    while _job_processes(str(h)) and time.monotonic() < end:
        time.sleep(0.1)
    for pid in _job_processes(str(h)):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
