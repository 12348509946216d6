"""Starting an endpoint process detached, waiting until it serves, and stopping it.

>>> started = spawn(client, "risk-team", "fraud-xgb-1", "127.0.0.1", 0)      # doctest: +SKIP
>>> info = wait_ready(started)       # {"url": ..., "port": ..., "pid": ...} or EndpointStartError
>>> stop(info["pid"], "fraud-xgb-1")                                          # doctest: +SKIP

The process runs in its own session (``start_new_session``: it outlives the notebook or CLI that
started it, and its process group can be signalled as one), with stdin closed and its output in
``HOME/endpoints/NAME/endpoint.log``. It tells the starter that it serves (or why it cannot) with
one JSON line on a pipe passed as ``--ready-fd``, so waiting costs no polling; a process that
dies before saying anything is reported with the log's last lines. A start that fails leaves no
process behind: the group is killed before the error is raised.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EndpointStartError",
    "Started",
    "alive",
    "endpoint_dir",
    "is_endpoint",
    "spawn",
    "stop",
    "wait_ready",
]


class EndpointStartError(Exception):
    """The endpoint process could not start serving; the message says why."""


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    ready_fd: int
    log: Path
    name: str


def endpoint_dir(client: Any, name: str) -> Path:
    """Where an endpoint's model cache, spool and log live on this machine."""
    return Path(client.home_path) / "endpoints" / name


def spawn(
    client: Any,
    workspace: str,
    name: str,
    host: str | None = None,
    port: int | None = None,
    *,
    launch: dict[str, Any] | None = None,
    starter_reports: bool = False,
) -> Started:
    """Start ``python -m tallymark.serving`` for endpoint ``name`` (its row must exist).

    ``launch``: the model as :func:`tallymark.serving.model.prepare` fetched it, so the process
    answers before opening the store; ``starter_reports``: the caller reports InService/Failed."""
    directory = endpoint_dir(client, name)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "endpoint.log"
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "tallymark.serving", "--workspace", workspace, "--endpoint", name]
    cmd += ["--ready-fd", str(w), "--dir", str(directory)]
    if launch is not None:
        spec = directory / "launch.json"
        spec.write_text(json.dumps({"model": launch, "host": host or "127.0.0.1", "port": port or 0}))
        cmd += ["--launch", str(spec)]
    if starter_reports:
        cmd.append("--starter-reports")
    if host is not None:
        cmd += ["--host", host]
    if port is not None:
        cmd += ["--port", str(port)]
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=client.child_environment(dict(os.environ)),
                pass_fds=(w,),
                start_new_session=True,
                close_fds=True,
            )
    finally:
        os.close(w)
    # Reap it whenever it ends, so a long-lived notebook keeps no zombie after a delete.
    threading.Thread(target=proc.wait, name=f"tallymark-endpoint-{name}", daemon=True).start()
    return Started(proc, r, log, name)


def wait_ready(started: Started, timeout: float = 60.0) -> dict[str, Any]:
    """The process's ready message, or :class:`EndpointStartError` (the process is then gone)."""
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                stop(started.proc.pid, started.name, force_own=True)
                raise EndpointStartError(
                    f"endpoint {started.name!r} did not start serving within {timeout:g} s; see {started.log}"
                )
            ready, _, _ = select.select([started.ready_fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(started.ready_fd, 65536)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(started.ready_fd)
    try:
        msg = json.loads(buf.split(b"\n", 1)[0]) if buf else {}
    except ValueError:
        msg = {}
    if "url" in msg:
        return dict(msg)
    stop(started.proc.pid, started.name, force_own=True)
    reason = msg.get("error") or f"the endpoint process exited before serving: {_tail(started.log)}"
    raise EndpointStartError(str(reason))


def _tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text[-lines:]) or "(empty log)"


def alive(pid: int | None) -> bool:
    """Whether ``pid`` runs on this machine (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def is_endpoint(pid: int, name: str) -> bool:
    """Whether ``pid`` is this machine's endpoint process for ``name`` (not a recycled pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
    except OSError:
        return False
    return b"tallymark.serving" in args and name.encode() in args


def stop(pid: int | None, name: str, timeout: float = 10.0, *, force_own: bool = False) -> bool:
    """SIGTERM the endpoint's process group, then SIGKILL after ``timeout``; True if it was running.

    Only a process that is this endpoint's (checked on /proc, so a recycled pid is never signalled),
    unless ``force_own``: a process this caller has just started itself."""
    if not pid or not alive(pid) or not (force_own or is_endpoint(pid, name)):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


def machine() -> str:
    return socket.gethostname()
