"""The machine and interpreter an experiment ran on.

``collect_environment()`` answers "where did this run happen?" for the reproducibility record
(DESIGN.md §5): Python, OS, host, user, command line, CPU, memory, GPUs and a few
behaviour-changing environment variables. It only reads cheap local sources (``platform``,
``/proc``, ``sysconf``); GPUs are listed through ``pynvml`` only when that package is installed.

Example::

    from tallymark.sdk.autolog import collect_environment
    env = collect_environment()
    env["python"]["version"], env["hostname"], env["cpu"]["count"]

Environment variables are copied from an allow-list (:data:`ENV_ALLOWLIST`) and never wholesale, so
API keys, tokens and passwords in the environment are not recorded. The command line and those
variables still pass through :mod:`.redact` (``--api-key=…`` and presigned URLs are common in argv).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .redact import redact_argv, redact_env

__all__ = ["ENV_ALLOWLIST", "collect_environment", "current_user"]

#: Environment variables worth recording: they change numerics, parallelism or which interpreter
#: and devices a run used. Anything not listed here is ignored (secrets live in the environment).
ENV_ALLOWLIST: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "TZ",
    "LANG",
    "LC_ALL",
)


def current_user() -> str:
    """The user an experiment is attributed to: ``ClientSettings.user`` (one rule for the SDK)."""
    from tallymark.sdk.identity import current_user as settings_user

    return settings_user()


def _cpu_model() -> str | None:
    import platform

    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    key, sep, value = line.partition(":")
                    # x86 says "model name"; some ARM kernels only give "Hardware"/"Processor".
                    if sep and key.strip() in ("model name", "Processor", "Hardware", "cpu model"):
                        value = value.strip()
                        if value:
                            return value
        except OSError:
            pass
        return platform.machine() or None
    if sys.platform == "win32":
        return platform.processor() or None  # reads the registry/env on Windows: no subprocess
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.machine() or None


def _cpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"count": os.cpu_count(), "model": _cpu_model()}
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        try:
            info["usable_count"] = len(sched_getaffinity(0))
        except OSError:
            pass
    return info


def _total_memory_bytes() -> int | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            return int(pages * page_size)
    except (AttributeError, ValueError, OSError):
        pass
    try:  # Windows, or a platform without these sysconf names
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def _gpus() -> list[dict[str, Any]]:
    """GPUs seen by the NVIDIA driver; an empty list without ``pynvml`` or without a driver."""
    try:
        import pynvml
    except Exception:
        return []
    gpus: list[dict[str, Any]] = []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver: str | None
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except Exception:
            driver = None
        for index in range(pynvml.nvmlDeviceGetCount()):
            gpu: dict[str, Any] = {"index": index, "driver_version": driver}
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                gpu["name"] = _text(pynvml.nvmlDeviceGetName(handle))
                gpu["memory_total_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
                gpu["uuid"] = _text(pynvml.nvmlDeviceGetUUID(handle))
            except Exception:
                pass
            gpus.append(gpu)
    except Exception:
        pass
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _timezone() -> dict[str, Any]:
    import datetime
    import time

    now = datetime.datetime.now().astimezone()
    offset = now.utcoffset()
    return {
        "name": now.tzname(),
        "utc_offset_seconds": int(offset.total_seconds()) if offset is not None else 0,
        "tzname": list(time.tzname),
    }


def _safe(fn: Any, default: Any = None) -> Any:
    try:
        return fn()
    except Exception:
        return default


def collect_environment() -> dict[str, Any]:
    """Describe the interpreter, machine and process; every value is JSON-serializable.

    Never raises: a source that cannot be read gives ``None`` (or an empty list) for its field.
    Costs about a millisecond when ``pynvml`` is absent.
    """
    import platform
    import socket

    uname = _safe(platform.uname)
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
        },
        "os": {
            "system": uname.system if uname else None,
            "release": uname.release if uname else None,
            "version": uname.version if uname else None,
            "machine": uname.machine if uname else None,
            "platform": _safe(platform.platform),
        },
        "hostname": _safe(socket.gethostname),
        "user": current_user(),
        "pid": os.getpid(),
        "cwd": _safe(os.getcwd),
        "argv": redact_argv(sys.argv),
        "orig_argv": redact_argv(getattr(sys, "orig_argv", sys.argv)),
        "cpu": _safe(_cpu_info, {}),
        "memory_total_bytes": _total_memory_bytes(),
        "gpus": _gpus(),
        "env_vars": redact_env({name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}),
        "timezone": _safe(_timezone),
    }
