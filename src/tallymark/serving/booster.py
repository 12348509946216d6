"""XGBoost's C library through ctypes: load a model from bytes, read its features, predict.

Why not ``import xgboost``: the package imports scipy (and, when installed, scikit-learn and
pandas) at import time — ~0.25 s of the endpoint's < 1 s start, for nothing an endpoint uses. The
shared library it ships (``xgboost/lib/libxgboost.so``) loads in milliseconds, and an endpoint
needs eight of its functions. The calls are the ones the Python package makes
(``Booster.load_model``, ``num_features``, ``feature_names``/``feature_types``, ``save_config``,
``inplace_predict``), so predictions are the same numbers (the tests compare them with
``xgboost.Booster.predict``). :func:`available` is False when the library cannot be found (an
unusual install): the caller then uses the Python package.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
import threading
from typing import Any

import numpy as np

__all__ = ["NativeBooster", "NativeError", "available"]

_u64 = ctypes.c_uint64
_lib: Any = None
_lock = threading.Lock()


class NativeError(Exception):
    """XGBoost's C library refused a call; the message is its own."""


def _library() -> Any:
    global _lib
    with _lock:
        if _lib is None:
            spec = importlib.util.find_spec("xgboost")
            if spec is None or not spec.submodule_search_locations:
                raise NativeError("the xgboost package is not installed")
            base = list(spec.submodule_search_locations)[0]
            name = {"darwin": "libxgboost.dylib", "win32": "xgboost.dll"}.get(sys.platform, "libxgboost.so")
            path = os.path.join(base, "lib", name)
            if not os.path.exists(path):
                raise NativeError(f"no XGBoost library at {path}")
            lib = ctypes.cdll.LoadLibrary(path)
            lib.XGBGetLastError.restype = ctypes.c_char_p
            _lib = lib
    return _lib


def available() -> bool:
    try:
        _library()
    except (NativeError, OSError):
        return False
    return True


def _check(rc: int) -> None:
    if rc != 0:
        msg = _library().XGBGetLastError()
        raise NativeError((msg or b"unknown XGBoost error").decode("utf-8", "replace"))


_PREDICT_CONFIG = json.dumps(
    {
        "type": 0,
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,
        "strict_shape": False,
        "missing": float("nan"),
        "cache_id": 0,
    }
).encode()


class NativeBooster:
    """One loaded model. Not thread-safe: the endpoint predicts on one thread (its event loop)."""

    def __init__(self, data: bytes, nthread: int = 1) -> None:
        lib = _library()
        self._lib = lib
        self.handle = ctypes.c_void_p()
        _check(lib.XGBoosterCreate(None, _u64(0), ctypes.byref(self.handle)))
        self._raw = bytes(data)
        buf = ctypes.create_string_buffer(self._raw, len(self._raw))
        try:
            _check(lib.XGBoosterLoadModelFromBuffer(self.handle, buf, _u64(len(self._raw))))
        except NativeError:
            self.close()
            raise
        self.set_param("nthread", str(nthread))
        self._shape = ctypes.POINTER(_u64)()
        self._dims = _u64()
        self._out = ctypes.POINTER(ctypes.c_float)()

    def close(self) -> None:
        if self.handle:
            self._lib.XGBoosterFree(self.handle)
            self.handle = ctypes.c_void_p()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def set_param(self, name: str, value: str) -> None:
        _check(self._lib.XGBoosterSetParam(self.handle, name.encode(), value.encode()))

    def copy(self, nthread: int) -> NativeBooster:
        return NativeBooster(self._raw, nthread)

    def num_features(self) -> int:
        n = _u64()
        _check(self._lib.XGBoosterGetNumFeature(self.handle, ctypes.byref(n)))
        return int(n.value)

    def _str_info(self, field: str) -> list[str] | None:
        n = _u64()
        arr = ctypes.POINTER(ctypes.c_char_p)()
        _check(
            self._lib.XGBoosterGetStrFeatureInfo(
                self.handle, field.encode(), ctypes.byref(n), ctypes.byref(arr)
            )
        )
        out = [arr[i].decode() for i in range(n.value)]
        return out or None

    @property
    def feature_names(self) -> list[str] | None:
        return self._str_info("feature_name")

    @property
    def feature_types(self) -> list[str] | None:
        return self._str_info("feature_type")

    def save_config(self) -> str:
        n = _u64()
        s = ctypes.c_char_p()
        _check(self._lib.XGBoosterSaveJsonConfig(self.handle, ctypes.byref(n), ctypes.byref(s)))
        return (s.value or b"").decode()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Like ``Booster.inplace_predict(x)`` on a dense float matrix (NaN = missing)."""
        a = np.ascontiguousarray(x, dtype=np.float64)
        iface = json.dumps({"data": (a.ctypes.data, True), "shape": a.shape, "typestr": "<f8", "version": 3})
        _check(
            self._lib.XGBoosterPredictFromDense(
                self.handle,
                iface.encode(),
                _PREDICT_CONFIG,
                None,
                ctypes.byref(self._shape),
                ctypes.byref(self._dims),
                ctypes.byref(self._out),
            )
        )
        shape = tuple(int(self._shape[i]) for i in range(self._dims.value))
        n = 1
        for d in shape:
            n *= d
        # The library owns the buffer until this booster's next call: copy it out now.
        return np.ctypeslib.as_array(self._out, (n,)).reshape(shape).copy()
