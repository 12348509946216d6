"""Synthetic imbalanced binary data for the built-in trainer's tests, written in each channel format."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

TRAINER = Path(__file__).resolve().parents[2] / "src" / "tallymark" / "jobs" / "builtin" / "xgboost_train.py"


def imbalanced(rows: int = 3000, features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """About 8 % positives, driven by the first two features plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = (X[:, 0] + 0.7 * X[:, 1] + 0.8 * rng.normal(size=rows) > 2.0).astype(np.int64)
    return X, y


def write_csv(folder: Path, X: np.ndarray, y: np.ndarray, name: str = "part.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.10g")
    return path


def write_libsvm(folder: Path, X: np.ndarray, y: np.ndarray, name: str = "part.libsvm") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    lines = [
        f"{int(label)} " + " ".join(f"{j}:{v:.10g}" for j, v in enumerate(row))
        for row, label in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(folder: Path, X: np.ndarray, y: np.ndarray, name: str = "part.parquet") -> Path:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"Class": y})
    for j in range(X.shape[1]):
        frame[f"V{j + 1}"] = X[:, j]
    frame["Count"] = (np.abs(X[:, 0]) * 10).astype(np.int64)
    frame["Flag"] = X[:, 1] > 0
    path = folder / name
    frame.to_parquet(path)
    return path


def sm_env(root: Path, channels: dict[str, Path], hps: dict[str, Any] | None = None) -> dict[str, str]:
    """The SM_* variables the job contract sets, pointing into ``root`` (no /opt/ml needed)."""
    import json

    env = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_FAILURE": str(root / "output" / "failure"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
    }
    for name, folder in channels.items():
        env[f"SM_CHANNEL_{name.upper()}"] = str(folder)
    if hps is not None:
        env["SM_HPS"] = json.dumps({k: str(v) for k, v in hps.items()})
    return env


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment (PYTHONPATH keeps the worktree's sources first) plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PYTHON = sys.executable
