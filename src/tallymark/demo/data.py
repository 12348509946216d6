"""Synthetic credit-card transactions with the schema of the public "Credit Card Fraud Detection" data.

The public data set (European card holders, two days of September 2013) has 284,807 transactions,
492 of them fraudulent (0.1727 %), and the columns ``Time`` (seconds since the first transaction),
``V1`` … ``V28`` (anonymised PCA components), ``Amount`` and ``Class`` (1 = fraud). It also holds
1,081 exact duplicate rows. :func:`generate` produces a deterministic stand-in with the same shape
and the same quirks, so that the demo runs without downloading anything:

- ``Time`` is whole seconds from 0 to 172,792, non-decreasing, with a day/night traffic cycle for
  normal transactions while frauds are spread evenly over the two days.
- ``V1`` … ``V28`` are roughly standard normal with a decreasing scale (like principal components),
  with heavier tails than a Gaussian (a shared per-row scale, so a few normal transactions look
  unusual in every component).
- Frauds differ in a handful of components (strongest in ``V14``, ``V17``, ``V12``, ``V10``, then
  ``V3``, ``V4``, ``V11``, ``V16``, ``V7`` …) by a shift whose size varies from fraud to fraud; some
  frauds are nearly indistinguishable from normal traffic, so a good model reaches a realistic, not
  perfect, area under the precision-recall curve.
- ``Amount`` is non-negative, log-normal-ish with a long tail, rounded to cents, with some zeros;
  frauds are more often tiny "card test" amounts.
- About 0.38 % of the rows are exact copies of another row (placed right after it), a few of them
  frauds, so that dropping duplicates has something to do.

:func:`load_csv` reads the real file (or any CSV with that schema) and validates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "FEATURES",
    "FULL_ROWS",
    "FULL_FRAUDS",
    "MIN_FRAUDS",
    "MIN_ROWS",
    "counts_for",
    "generate",
    "load_csv",
]

V_COLUMNS: list[str] = [f"V{i}" for i in range(1, 29)]
FEATURES: list[str] = ["Time", *V_COLUMNS, "Amount"]
COLUMNS: list[str] = [*FEATURES, "Class"]

FULL_ROWS = 284_807
FULL_FRAUDS = 492
FULL_DUPLICATES = 1_081
FULL_FRAUD_DUPLICATES = 19
TIME_MAX = 172_792
# Smallest fraud count for any size: a 70/15/15 stratified split then still puts at least one fraud
# in each of validation and test, and the rarer class has enough members for sklearn's stratify.
MIN_FRAUDS = 10
MIN_ROWS = 1_000

# Scale of V1..V28 for normal transactions: geometric decay from ~2 to ~0.33, as PCA output would.
_V_SCALE = 1.95 * (0.33 / 1.95) ** (np.arange(28) / 27.0)

# Mean shift of frauds (in units of the component's scale) at "full strength", by component number.
_FRAUD_SHIFT: dict[int, float] = {
    14: -3.2,
    17: -2.9,
    12: -2.7,
    10: -2.4,
    3: -2.0,
    4: 1.9,
    11: 1.8,
    16: -1.7,
    7: -1.5,
    1: -1.0,
    2: 1.0,
    9: -0.9,
    18: -0.8,
    5: -0.6,
    6: -0.4,
    21: 0.3,
    19: 0.3,
}
# Frauds are also more spread out in the components where they are shifted.
_FRAUD_SPREAD_SHIFTED = 1.6
_FRAUD_SPREAD_OTHER = 1.15


def counts_for(rows: int) -> tuple[int, int, int]:
    """``(frauds, duplicate_rows, fraud_duplicate_rows)`` that :func:`generate` uses for ``rows``.

    The fraud rate of the real data (492 / 284,807) is kept, with at least :data:`MIN_FRAUDS`;
    duplicates are 1,081 / 284,807 of the rows, of which 19 / 492 of the frauds. At the default size
    this gives exactly 492 frauds and 1,081 duplicates.
    """
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS:,} (got {rows:,})")
    frauds = max(MIN_FRAUDS, round(rows * FULL_FRAUDS / FULL_ROWS))
    duplicates = round(rows * FULL_DUPLICATES / FULL_ROWS)
    # Never let duplicates push the distinct frauds under the minimum.
    fraud_duplicates = min(round(frauds * FULL_FRAUD_DUPLICATES / FULL_FRAUDS), frauds - MIN_FRAUDS)
    fraud_duplicates = max(0, min(fraud_duplicates, duplicates))
    return frauds, duplicates, fraud_duplicates


def _times(rng: np.random.Generator, n: int, day_cycle: bool) -> np.ndarray:
    """``n`` whole-second timestamps in [0, TIME_MAX], with a day/night cycle if asked."""
    if not day_cycle:
        return rng.integers(0, TIME_MAX + 1, size=n).astype(np.float64)
    seconds = np.arange(TIME_MAX + 1, dtype=np.float64)
    hour = (seconds / 3600.0) % 24.0
    # Busy from morning to evening, quiet around 03:00-05:00.
    intensity = 0.12 + (0.5 - 0.5 * np.cos(2.0 * np.pi * (hour - 4.0) / 24.0)) ** 1.5
    cdf = np.cumsum(intensity)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(n)).astype(np.float64)


def _normal_components(rng: np.random.Generator, n: int) -> np.ndarray:
    """V1..V28 for normal transactions: multivariate Student-t (8 d.o.f.) scaled to unit variance."""
    df = 8.0
    row_scale = np.sqrt((df - 2.0) / rng.chisquare(df, size=n))
    z = rng.standard_normal((n, 28))
    z *= row_scale[:, None]
    z *= _V_SCALE
    return z


def _fraud_components(rng: np.random.Generator, n: int) -> np.ndarray:
    """V1..V28 for frauds: shifted, wider, with a per-fraud strength (some frauds look normal)."""
    shift = np.zeros(28)
    spread = np.full(28, _FRAUD_SPREAD_OTHER)
    for component, amount in _FRAUD_SHIFT.items():
        shift[component - 1] = amount
        spread[component - 1] = _FRAUD_SPREAD_SHIFTED
    # Strength: most frauds are clear, a minority subtle, a few indistinguishable from normal traffic.
    kind = rng.random(n)
    strength = np.where(
        kind < 0.70,
        rng.uniform(0.75, 1.6, n),
        np.where(kind < 0.91, rng.uniform(0.25, 0.75, n), rng.uniform(0.0, 0.25, n)),
    )
    z = rng.standard_normal((n, 28))
    z *= spread
    z += strength[:, None] * shift
    z *= _V_SCALE
    return z


def _amounts(rng: np.random.Generator, v: np.ndarray, fraud: bool) -> np.ndarray:
    """Transaction amounts in currency units, rounded to cents."""
    n = v.shape[0]
    if fraud:
        tiny = rng.random(n) < 0.35
        log_amount = rng.normal(4.2, 1.5, n)
        amount = np.exp(log_amount)
        # "Card tests": tiny amounts, mostly 1.00, else 0.00 or 2.00.
        test_amount = np.where(rng.random(n) < 0.5, 1.0, np.round(rng.uniform(0.0, 2.0, n), 0))
        amount = np.where(tiny, test_amount, amount)
    else:
        # Amount is correlated with a couple of components (like V2 and V7 in the real data).
        log_amount = 3.0 - 0.35 * v[:, 1] / _V_SCALE[1] + 0.2 * v[:, 6] / _V_SCALE[6]
        log_amount += rng.normal(0.0, 1.3, n)
        amount = np.exp(log_amount)
        amount[rng.random(n) < 0.006] = 0.0
    return np.round(np.clip(amount, 0.0, 25_000.0), 2)


def generate(rows: int = FULL_ROWS, seed: int = 0) -> pd.DataFrame:
    """A deterministic synthetic data set with the public credit-card-fraud schema.

    ``rows`` transactions (at least :data:`MIN_ROWS`), of which :func:`counts_for` ``(rows)`` are
    frauds and duplicates; the same ``(rows, seed)`` always gives the same frame. Columns are
    :data:`COLUMNS`: ``Time``, ``V1`` … ``V28`` and ``Amount`` as float64, ``Class`` as int64.
    """
    frauds, duplicates, fraud_duplicates = counts_for(rows)
    rng = np.random.default_rng(seed)
    distinct = rows - duplicates
    distinct_frauds = frauds - fraud_duplicates
    distinct_normals = distinct - distinct_frauds

    v_normal = _normal_components(rng, distinct_normals)
    v_fraud = _fraud_components(rng, distinct_frauds)
    values = np.empty((distinct, len(COLUMNS)), dtype=np.float64)
    values[:distinct_normals, 0] = _times(rng, distinct_normals, day_cycle=True)
    values[distinct_normals:, 0] = _times(rng, distinct_frauds, day_cycle=False)
    values[:distinct_normals, 1:29] = v_normal
    values[distinct_normals:, 1:29] = v_fraud
    values[:distinct_normals, 29] = _amounts(rng, v_normal, fraud=False)
    values[distinct_normals:, 29] = _amounts(rng, v_fraud, fraud=True)
    values[:distinct_normals, 30] = 0.0
    values[distinct_normals:, 30] = 1.0

    # Order by time; the first transaction is at 0 s and the last at TIME_MAX, as in the real file.
    values = values[np.argsort(values[:, 0], kind="stable")]
    values[0, 0] = 0.0
    values[-1, 0] = float(TIME_MAX)

    # Duplicates: copies of distinct rows (normals and a few frauds), each right after its original.
    is_fraud = values[:, 30] == 1.0
    sources = np.concatenate(
        [
            rng.choice(np.flatnonzero(~is_fraud), size=duplicates - fraud_duplicates, replace=False),
            rng.choice(np.flatnonzero(is_fraud), size=fraud_duplicates, replace=False),
        ]
    )
    order = np.sort(np.concatenate([np.arange(distinct), sources]))
    values = values[order]

    frame = pd.DataFrame(values[:, :30], columns=FEATURES)
    frame["Class"] = values[:, 30].astype(np.int64)
    return frame


def load_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV with the credit-card-fraud schema (e.g. Kaggle's ``creditcard.csv``).

    Returns the :data:`COLUMNS` in canonical order (extra columns are dropped), features as float64
    and ``Class`` as int64. Raises :class:`ValueError` naming the missing columns, or describing
    non-numeric values or a ``Class`` that is not 0/1.
    """
    path = Path(path)
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: not a credit-card-fraud CSV: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(COLUMNS[:2])}, …, {', '.join(COLUMNS[-3:])})"
        )
    frame = frame[COLUMNS].copy()
    for column in COLUMNS:
        converted = pd.to_numeric(frame[column], errors="coerce")
        if converted.isna().any():
            row = int(np.flatnonzero(converted.isna().to_numpy())[0])
            raise ValueError(
                f"{path}: column {column!r} has a missing or non-numeric value "
                f"({frame[column].iloc[row]!r} at data row {row + 1})"
            )
        frame[column] = converted
    labels = set(np.unique(frame["Class"].to_numpy()).tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"{path}: column 'Class' must hold only 0 and 1 (found {sorted(labels)})")
    frame[FEATURES] = frame[FEATURES].astype(np.float64)
    frame["Class"] = frame["Class"].astype(np.int64)
    return frame
