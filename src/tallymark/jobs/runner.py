"""One attempt of a job: the script as a supervised child process on this machine.

>>> outcome = run_attempt(spec, root, sink, attempt=1)        # doctest: +SKIP
>>> outcome.status, outcome.exit_code, outcome.failure_reason  # doctest: +SKIP

The child runs in its own process group (and, on Linux, its own mount namespace with the job's
root at /opt/ml: :mod:`tallymark.jobs.mounts`). Its stdout and stderr go, as they come, to the
root's ``logs/output.log`` (all of it) and to ``sink.log`` (which ships batches to the store).
``max_run`` and a stop request (``sink.should_stop()``, polled twice a second) end the group the
same way: SIGTERM, ``stop_grace`` seconds, SIGKILL. Whatever the script does — exit 1, never end,
print 100 MB, fork children that keep the pipes open — the attempt ends: the group is killed once
its leader has exited, and the output reader stops after a short drain.
"""

from __future__ import annotations

import collections
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from tallymark.jobs import contract, mounts
from tallymark.jobs.spec import AttemptOutcome, JobSink, JobSpec

__all__ = ["run_attempt"]

STOP_POLL = 0.5  # seconds between sink.should_stop() checks
READ = 1 << 16
DRAIN = 3.0  # seconds the reader may still drain pipes held open by an escaped grandchild
TAIL_LINES = 15


def now_ms() -> int:
    return int(time.time() * 1000)


def _fail(reason: str, started: int) -> AttemptOutcome:
    return AttemptOutcome("Failed", None, reason, started, now_ms(), socket.gethostname())


def uses_opt_ml(spec: JobSpec, root: Path) -> bool:
    """Whether the job needs /opt/ml itself: its script's text says "/opt/ml" (scanned, not run),
    or a processing path is an absolute path the root cannot stand in for without a namespace."""
    if spec.kind == "processing":
        return True  # processing inputs and outputs live at absolute paths
    if spec.algorithm is not None:
        return False
    code = root / "code"
    for p in code.rglob("*.py"):
        try:
            if b"/opt/ml" in p.read_bytes():
                return True
        except OSError:
            continue
    return False


def run_attempt(spec: JobSpec, root: Path, sink: JobSink, attempt: int) -> AttemptOutcome:
    """Run one attempt of ``spec`` in its prepared ``root`` (see :func:`contract.prepare_root`)."""
    root = Path(root)
    started = now_ms()
    host = socket.gethostname()
    reason = mounts.unavailable_reason()
    namespaced = reason is None
    if not namespaced and uses_opt_ml(spec, root):
        return _fail(
            f"this job needs its own /opt/ml (its script uses /opt/ml paths, or it is a processing job), "
            f"but {reason}; use only the SM_* variables in the script, or run it on Linux with `unshare`",
            started,
        )
    failure_file = root / "output" / "failure"
    failure_file.unlink(missing_ok=True)
    env = {**os.environ, **spec.environment, **contract.environment(spec, root, namespaced)}
    cmd = contract.command(spec, root, namespaced)
    base = contract.ML if namespaced else str(root)
    cwd = f"{base}/code"
    if namespaced:
        cmd = mounts.wrap(cmd, root, cwd, contract.extra_mounts(spec, root))
    log_path = root / "logs" / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logf = log_path.open("ab")
    if attempt > 1:
        logf.write(f"\n[tallymark: attempt {attempt}]\n".encode())
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(root / "code") if not namespaced else None,
            start_new_session=True,  # its own process group (and session: no terminal signals)
            bufsize=0,
        )
    except OSError as exc:
        logf.close()
        return _fail(f"the job's process could not start: {exc}", started)
    reader = _Reader(proc, logf, sink)
    reader.start()
    sink.status(
        attempt=attempt,
        secondary_status="Training" if spec.kind == "training" else "Processing",
        pid=proc.pid,
        host=host,
        **({"started_at": started} if attempt == 1 else {}),
    )
    ended_by = _supervise(proc, spec, sink)
    reader.finish()
    logf.close()
    rc = proc.returncode
    exit_code = rc if rc >= 0 else 128 - rc  # killed by signal N: 128 + N, as a shell reports it
    if ended_by == "TimedOut":
        status = "TimedOut"
        why = (
            f"the job ran longer than max_run={spec.max_run}s and was ended "
            f"(SIGTERM, SIGKILL after {spec.stop_grace:g}s)"
        )
    elif ended_by == "Stopped":
        status, why = "Stopped", "stopped on request"
    elif rc == 0:
        status, why = "Completed", None
    else:
        status, why = "Failed", _failure_reason(failure_file, rc, reader.stderr_tail())
    sink.close()
    return AttemptOutcome(status, exit_code, why, started, now_ms(), host)


def _supervise(proc: subprocess.Popen[bytes], spec: JobSpec, sink: JobSink) -> str | None:
    """Wait for the child, ending its group on max_run or a stop request; returns why it was ended."""
    t0 = time.monotonic()
    deadline = t0 + spec.max_run
    next_poll = t0 + STOP_POLL
    ended_by: str | None = None
    while True:
        try:
            # Exited? (WNOWAIT: not reaped yet, so its group id cannot be reused before the kill below)
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
            break
        if info is not None:
            break
        now = time.monotonic()
        if ended_by is None and now >= deadline:
            ended_by = "TimedOut"
            _terminate(proc, spec.stop_grace)
            continue
        if ended_by is None and now >= next_poll:
            next_poll = now + STOP_POLL
            try:
                stop = sink.should_stop()
            except Exception:
                stop = False  # the store is unreachable for now: the job keeps running
            if stop:
                ended_by = "Stopped"
                _terminate(proc, spec.stop_grace)
                continue
        time.sleep(0.05)
    _kill_group(proc.pid, signal.SIGKILL)  # whatever the script left behind in its group
    proc.wait()
    return ended_by


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the group; SIGKILL after ``grace`` seconds if the leader has not exited."""
    _kill_group(proc.pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.05)
    _kill_group(proc.pid, signal.SIGKILL)


def _failure_reason(failure_file: Path, rc: int, tail: bytes) -> str:
    try:
        text = failure_file.read_text(errors="replace").strip()
    except OSError:
        text = ""
    if text:
        return text[:4000]
    lines = [ln for ln in tail.decode(errors="replace").splitlines() if ln.strip()][-TAIL_LINES:]
    what = f"the script exited with code {rc}" if rc >= 0 else f"the script was killed by signal {-rc}"
    return (what + (":\n" + "\n".join(lines) if lines else " and wrote nothing to stderr"))[:4000]


class _Reader(threading.Thread):
    """Reads the child's stdout and stderr as they come, into the log file and the sink."""

    def __init__(self, proc: subprocess.Popen[bytes], logf: object, sink: JobSink) -> None:
        super().__init__(name="tallymark-job-output", daemon=True)
        self.proc, self.logf, self.sink = proc, logf, sink
        self._tail: collections.deque[bytes] = collections.deque(maxlen=64)
        self._stop_at: float | None = None
        self.first_output_ms: int | None = None

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
            sel.register(f, selectors.EVENT_READ)
        open_files = 2
        while open_files:
            if self._stop_at is not None and time.monotonic() > self._stop_at:
                break
            for key, _ in sel.select(timeout=0.2):
                try:
                    data = os.read(key.fd, READ)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    open_files -= 1
                    continue
                if self.first_output_ms is None:
                    self.first_output_ms = now_ms()
                if key.fileobj is self.proc.stderr:
                    self._tail.append(data[-4096:])
                self.logf.write(data)  # type: ignore[attr-defined]
                self.sink.log(data)
        sel.close()

    def finish(self) -> None:
        self._stop_at = time.monotonic() + DRAIN
        self.join()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()

    def stderr_tail(self) -> bytes:
        return b"".join(self._tail)[-8192:]
