"""Keep pandas and scikit-learn out of the endpoint process.

``import xgboost`` imports scikit-learn and pandas when they are installed (``xgboost.compat``),
which takes ~1.2 s of the endpoint's < 1 s start-up budget and ~150 MB of memory, for features
(DataFrame inputs, the sklearn wrappers) an endpoint never uses: requests arrive as JSON, CSV or
tensors and become numpy arrays here. XGBoost treats both as optional, so refusing them on import
makes it fall back to its numpy-only paths.

The only exception is a trusted pickle (docs/serving.md): unpickling an sklearn-API model needs
sklearn, so :func:`unblock` lifts the block for that process.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any

__all__ = ["BLOCKED", "block", "unblock"]

BLOCKED = frozenset({"pandas", "sklearn"})


class _Refuse(MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".", 1)[0] in BLOCKED:
            raise ImportError(
                f"{fullname} is not imported in an endpoint process (tallymark.serving.imports)"
            )
        return None


_finder = _Refuse()


def block() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def unblock() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
