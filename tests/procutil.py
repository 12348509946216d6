"""Process helpers shared by the real servers the test-suite starts (tests/pgserver.py,
tests/s3server.py): liveness, parent-death signals, free ports, opt-in environment flags."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import sys
import threading
from collections.abc import Callable


def env_flag(name: str) -> bool:
    """True when the environment variable is set to 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
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


def parent_death_preexec(sig: int) -> Callable[[], None] | None:
    """preexec_fn that makes the child get ``sig`` when the parent dies; Linux only.

    The kernel fires the signal when the *thread* that forked exits, so this is only used from the
    main thread; servers started from other threads rely on stop()/atexit alone.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sig)
        if os.getppid() != parent:  # parent already died between fork and prctl
            os._exit(1)

    return preexec


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
