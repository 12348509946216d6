"""Largest-Triangle-Three-Buckets downsampling for charts (Steinarsson, 2013).

Keeps the first and last points and, in each bucket between, the point forming the largest
triangle with the previously kept point and the next bucket's mean: peaks and dips survive, which
plain striding loses. Vectorised per bucket with numpy.
"""

from __future__ import annotations

import numpy as np


def lttb_indices(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices (sorted) of at most ``n_out`` points of (x, y) chosen by LTTB.

    ``x`` must be sorted; ``x`` and ``y`` must be finite.

    >>> lttb_indices(np.arange(10.0), np.arange(10.0), 3).tolist()
    [0, 4, 9]
    """
    n = int(x.shape[0])
    if n_out >= n or n <= 2:
        return np.arange(n)
    if n_out < 3:
        return np.array([0, n - 1]) if n_out == 2 else np.array([n - 1])
    x = x.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    # Bucket edges for the n - 2 middle points split into n_out - 2 buckets.
    edges = np.linspace(1, n - 1, n_out - 1).astype(np.int64)
    out = np.empty(n_out, np.int64)
    out[0] = 0
    out[-1] = n - 1
    prev = 0
    for b in range(n_out - 2):
        lo, hi = edges[b], max(edges[b + 1], edges[b] + 1)
        if b + 2 < n_out - 1:
            nlo, nhi = edges[b + 1], max(edges[b + 2], edges[b + 1] + 1)
            nx, ny = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        else:
            nx, ny = x[n - 1], y[n - 1]
        px, py = x[prev], y[prev]
        bx, by = x[lo:hi], y[lo:hi]
        area = np.abs((px - nx) * (by - py) - (px - bx) * (ny - py))
        prev = lo + int(np.argmax(area))
        out[b + 1] = prev
    return out
