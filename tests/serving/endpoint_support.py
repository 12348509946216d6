"""What the endpoint tests share: a tiny XGBoost model logged and registered through the SDK, and a
reaper that kills every endpoint process a test started (whatever the test did)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ["amount", "age", "count", "flag"]
SIGNATURE = {
    "inputs": [
        {"name": "amount", "type": "double"},
        {"name": "age", "type": "double", "required": False},  # missing values allowed here only
        {"name": "count", "type": "long"},
        {"name": "flag", "type": "boolean"},
    ],
    "outputs": [{"name": "score", "type": "double"}],
}


def data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [rng.normal(100, 30, n), rng.normal(40, 10, n), rng.integers(0, 20, n), rng.integers(0, 2, n)]
    ).astype(np.float64)
    y = ((x[:, 0] > 100) ^ (x[:, 3] > 0)).astype(int)
    return x, y


def train(rounds: int = 8) -> Any:
    import xgboost as xgb

    x, y = data()
    d = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, d, rounds)


def booster_predict(booster: Any, x: np.ndarray) -> np.ndarray:
    """XGBoost's own answer for these rows (what every dialect must equal)."""
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(x, feature_names=FEATURES))  # type: ignore[no-any-return]


def register(
    path: Path,
    model: str = "fraud-xgb",
    workspace: str = "risk",
    metadata: dict[str, Any] | None = None,
    url: str | None = None,
) -> str:
    """Log ``path`` as a model through the SDK and register it; returns the version."""
    from tallymark import Experiment

    exp = Experiment(
        project_name="fraud",
        workspace=workspace,
        url=url,
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    )
    meta = {"framework": "xgboost", "format": "ubj", "model_file": path.name, "signature": SIGNATURE}
    exp.log_model(model, str(path), metadata=meta if metadata is None else metadata)
    out = exp.register_model(model)
    exp.end()
    return (
        str(out["version"]) if isinstance(out, dict) and "version" in out else _newest(model, workspace, url)
    )


def _newest(model: str, workspace: str, url: str | None) -> str:
    from tallymark import API

    return API(url=url).get_model(workspace, model).find_versions()[-1]


class Reaper:
    """Records every endpoint process started through ``tallymark.serving.process.spawn`` and kills
    what is still running at teardown (the process group, SIGKILL), then reaps it."""

    def __init__(self) -> None:
        self.procs: list[Any] = []

    def wrap(self, spawn: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*a: Any, **kw: Any) -> Any:
            started = spawn(*a, **kw)
            self.procs.append(started.proc)
            return started

        return recorded

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(10)
        self.procs.clear()


@contextlib.contextmanager
def reaping() -> Iterator[Reaper]:
    import pytest

    from tallymark.serving import process

    r = Reaper()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(process, "spawn", r.wrap(process.spawn))
        try:
            yield r
        finally:
            r.kill_all()


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "the condition") -> None:
    """Poll until true; a generous bound on a hang, not a timing assert."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)
