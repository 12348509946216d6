"""Preparing the fraud data for training: de-duplication, a stratified split and scaling.

Decisions (the same as the usual notebooks on this data set):

- **Exact duplicate rows are dropped** before splitting, so that no transaction appears in both the
  training and the test set (which would inflate the test metrics). The count is reported.
- **Stratified split** 70 / 15 / 15 (train / validation / test) on ``Class``: with 0.17 % frauds a
  plain random split could leave the validation or test set with almost no frauds.
- **Only ``Time`` and ``Amount`` are standardised** (``StandardScaler`` fit on the training split
  only, then applied to all three splits). ``V1`` … ``V28`` are already centred PCA components, and
  gradient-boosted trees do not need scaling at all; scaling the two raw columns keeps the frame
  usable by scale-sensitive models (logistic regression) and matches the reference workflow. Fitting
  on the training split only keeps validation and test statistics out of training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from tallymark.demo.data import COLUMNS, FEATURES, MIN_FRAUDS

__all__ = ["SCALED_COLUMNS", "Prepared", "preprocess"]

SCALED_COLUMNS: tuple[str, ...] = ("Time", "Amount")


@dataclass
class Prepared:
    """The three splits, ready for training, and the facts worth logging about them.

    ``X_*`` are DataFrames with the :data:`~tallymark.demo.data.FEATURES` columns (``Time`` and
    ``Amount`` scaled); ``y_*`` are int64 arrays (1 = fraud); ``*_index`` are the row labels of each
    split in the input frame, so a split can be traced back to the raw data.
    """

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_validation: pd.DataFrame
    y_validation: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    scaler: StandardScaler
    rows_raw: int
    duplicates_dropped: int
    seed: int
    train_index: np.ndarray = field(repr=False)
    validation_index: np.ndarray = field(repr=False)
    test_index: np.ndarray = field(repr=False)
    scaled_columns: tuple[str, ...] = SCALED_COLUMNS
    feature_names: list[str] = field(default_factory=lambda: list(FEATURES))

    @property
    def rows(self) -> int:
        """Rows after dropping duplicates (the sum of the three splits)."""
        return len(self.y_train) + len(self.y_validation) + len(self.y_test)

    @property
    def frauds(self) -> int:
        """Frauds after dropping duplicates."""
        return int(self.y_train.sum() + self.y_validation.sum() + self.y_test.sum())

    def split_counts(self) -> dict[str, dict[str, int]]:
        """``{"train": {"rows": …, "frauds": …}, "validation": {…}, "test": {…}}``."""
        return {
            name: {"rows": int(len(y)), "frauds": int(y.sum())}
            for name, y in (("train", self.y_train), ("validation", self.y_validation), ("test", self.y_test))
        }

    def summary(self) -> dict[str, Any]:
        """Flat dataset facts, e.g. for ``exp.log_others``."""
        facts: dict[str, Any] = {
            "dataset_rows_raw": self.rows_raw,
            "dataset_duplicates_dropped": self.duplicates_dropped,
            "dataset_rows": self.rows,
            "dataset_frauds": self.frauds,
            "dataset_fraud_rate": round(self.frauds / self.rows, 6) if self.rows else 0.0,
        }
        for name, counts in self.split_counts().items():
            facts[f"{name}_rows"] = counts["rows"]
            facts[f"{name}_frauds"] = counts["frauds"]
        facts["scaled_columns"] = ",".join(self.scaled_columns)
        facts["split_seed"] = self.seed
        return facts


def preprocess(
    df: pd.DataFrame,
    seed: int = 0,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> Prepared:
    """Drop duplicates, split stratified into train/validation/test and scale ``Time``/``Amount``.

    ``df`` must have the :data:`~tallymark.demo.data.COLUMNS`; it is not modified. The split is
    deterministic for a given ``seed``. Raises :class:`ValueError` if columns are missing or there
    are fewer than :data:`~tallymark.demo.data.MIN_FRAUDS` distinct frauds (too few to stratify).
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    if not 0.0 < validation_size < 1.0 or not 0.0 < test_size < 1.0 or validation_size + test_size >= 1.0:
        raise ValueError("validation_size and test_size must be in (0, 1) and sum to less than 1")

    rows_raw = len(df)
    deduplicated = df[COLUMNS].drop_duplicates()
    duplicates_dropped = rows_raw - len(deduplicated)
    labels = deduplicated["Class"].to_numpy()
    frauds = int(labels.sum())
    if frauds < MIN_FRAUDS or len(labels) - frauds < MIN_FRAUDS:
        raise ValueError(
            f"need at least {MIN_FRAUDS} distinct rows of each class to split stratified "
            f"(found {frauds} frauds and {len(labels) - frauds} normal rows)"
        )

    held_out = validation_size + test_size
    train, rest = train_test_split(deduplicated, test_size=held_out, stratify=labels, random_state=seed)
    validation, test = train_test_split(
        rest, test_size=test_size / held_out, stratify=rest["Class"].to_numpy(), random_state=seed
    )

    scaler = StandardScaler()
    scaled = list(SCALED_COLUMNS)
    scaler.fit(train[scaled].to_numpy())

    def features(part: pd.DataFrame) -> pd.DataFrame:
        out = part[FEATURES].copy()
        out[scaled] = scaler.transform(part[scaled].to_numpy())
        return out

    return Prepared(
        X_train=features(train),
        y_train=train["Class"].to_numpy(dtype=np.int64),
        X_validation=features(validation),
        y_validation=validation["Class"].to_numpy(dtype=np.int64),
        X_test=features(test),
        y_test=test["Class"].to_numpy(dtype=np.int64),
        scaler=scaler,
        rows_raw=rows_raw,
        duplicates_dropped=duplicates_dropped,
        seed=seed,
        train_index=train.index.to_numpy(),
        validation_index=validation.index.to_numpy(),
        test_index=test.index.to_numpy(),
    )
