"""Running the demo's jobs and showing them live: status, elapsed time, boosting rounds, last log line.

A job runs in its own process (locally, or on a Dask worker), so the demo cannot call back into it;
it polls the store instead, as ``tallymark jobs show`` would: the job's status row and its log,
from which the built-in XGBoost trainer's SageMaker-style round lines
(``[12]#011train-auc:0.99#011validation-aucpr:0.81``) give the rounds done.
"""

from __future__ import annotations

import contextlib
import re
import tarfile
import time
from pathlib import Path
from typing import Any

__all__ = ["JobFailed", "extract_model", "follow", "last_round"]

_ROUND = re.compile(r"^\[(\d+)\](?:#011|\t)(.*)$", re.MULTILINE)
_POLL_SECONDS = 0.2


class JobFailed(RuntimeError):
    """A demo job ended in another status than Completed; the message says why and where to look."""


def last_round(log_text: str) -> tuple[int, str]:
    """``(round, "train-auc:… validation-auc:…")`` of the last round line in ``log_text``, or (0, "")."""
    matches = _ROUND.findall(log_text)
    if not matches:
        return 0, ""
    number, metrics = matches[-1]
    return int(number), metrics.replace("#011", "  ").strip()


def _last_line(log_text: str) -> str:
    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line:
            return line
    return ""


def _log_text(job: Any) -> str:
    text = job.logs()
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")


def follow(job: Any, progress: Any, task: Any, rounds: int | None = None) -> str:
    """Poll ``job`` until it ends, drawing its status (and rounds) on ``progress``'s ``task``.

    Returns the final status; raises :class:`JobFailed` unless it is ``Completed``.
    """
    try:
        info, status = _poll(job, progress, task, rounds)
    except BaseException:
        # Ctrl-C (or any failure here) must not leave the job running detached: ask it to stop.
        with contextlib.suppress(Exception):
            job.stop()
        raise
    if status != "Completed":
        reason = info.get("failure_reason") or "no reason given"
        raise JobFailed(
            f"job {job.job_name} ended {status}: {reason} "
            f"(its output: tallymark jobs logs {job.workspace} {job.job_name})"
        )
    progress.update(task, completed=rounds or 1, total=rounds or 1)
    return status


def _poll(job: Any, progress: Any, task: Any, rounds: int | None) -> tuple[dict[str, Any], str]:
    from tallymark.jobs.spec import FINAL_STATUSES
    from tallymark.termsafe import markup

    while True:
        info = job.refresh()
        status = str(info["status"])
        text = _log_text(job)
        done, metrics = last_round(text)
        tail = f" · job {job.job_name}"
        if rounds:
            note = f"{status} · round {done}/{rounds}" + (f" · {metrics}" if metrics else "") + tail
            progress.update(task, completed=done, total=rounds)
        else:
            line = _last_line(text)
            note = f"{status}" + (f" · {line}" if line else "") + tail
        progress.update(task, note=markup(note[:200]))
        if status in FINAL_STATUSES:
            return info, status
        time.sleep(_POLL_SECONDS)


def extract_model(model_data: str | Path, dest: Path) -> dict[str, Path]:
    """Take ``xgboost-model`` and ``signature.json`` out of a job's ``model.tar.gz`` into ``dest``.

    Only those two regular files are read, by name, so no entry of the archive can write anywhere
    else (no ``..``, no absolute path, no link).
    """
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {"xgboost-model", "signature.json"}
    out: dict[str, Path] = {}
    with tarfile.open(model_data, "r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                source = archive.extractfile(member)
                if source is None:
                    continue
                target = dest / name
                target.write_bytes(source.read())
                out[name] = target
    if "xgboost-model" not in out:
        raise JobFailed(f"{model_data} holds no xgboost-model")
    return out
