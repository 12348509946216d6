"""Preprocess the credit-card-fraud transactions for XGBoost, as a SageMaker Processing Job does.

This is a script in the style of the reference notebook's ``preprocess.py`` and runs unchanged on
SageMaker's scikit-learn processing container: it imports nothing from tallymark and hard-codes the
container paths. tallymark's ProcessingJob gives it a private ``/opt/ml`` (a mount namespace), so the
paths below are the job's own.

- reads ``creditcard.parquet`` or ``creditcard.csv`` from ``/opt/ml/processing/input``;
- drops exact duplicate rows (so no transaction lands in two splits), splits 70/15/15 stratified on
  ``Class``, and standardises ``Time`` and ``Amount`` with a scaler fit on the training split only;
- writes ``train``, ``validation`` and ``test`` under ``/opt/ml/processing/output/`` as parquet with
  the label ``Class`` in the first column (the layout SageMaker's built-in XGBoost reads), plus
  ``summary.json`` with the counts.
"""

import argparse
import json
import os

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

INPUT_DIR = "/opt/ml/processing/input"
OUTPUT_DIR = "/opt/ml/processing/output"
LABEL = "Class"
SCALED = ["Time", "Amount"]


def read_input(folder):
    for name in ("creditcard.parquet", "creditcard.csv"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    raise SystemExit(f"no creditcard.parquet or creditcard.csv in {folder}: {sorted(os.listdir(folder))}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--validation-size", type=float, default=0.15)
    parser.add_argument("--test-size", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    df = read_input(INPUT_DIR)
    rows_raw = len(df)
    print(f"Read {rows_raw} rows, {int(df[LABEL].sum())} frauds from {INPUT_DIR}", flush=True)
    df = df.drop_duplicates()
    print(f"Dropped {rows_raw - len(df)} duplicate rows", flush=True)

    held_out = args.validation_size + args.test_size
    train, rest = train_test_split(df, test_size=held_out, stratify=df[LABEL], random_state=args.seed)
    validation, test = train_test_split(
        rest, test_size=args.test_size / held_out, stratify=rest[LABEL], random_state=args.seed
    )

    scaler = StandardScaler().fit(train[SCALED].to_numpy())
    features = [c for c in df.columns if c != LABEL]
    summary = {"rows_raw": rows_raw, "duplicates_dropped": rows_raw - len(df), "rows": len(df)}
    summary["frauds"] = int(df[LABEL].sum())
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        out = part[[LABEL, *features]].copy()  # label first: the built-in XGBoost layout
        out[SCALED] = scaler.transform(part[SCALED].to_numpy())
        folder = os.path.join(OUTPUT_DIR, name)
        os.makedirs(folder, exist_ok=True)
        out.reset_index(drop=True).to_parquet(os.path.join(folder, f"{name}.parquet"), index=False)
        summary[f"{name}_rows"] = len(out)
        summary[f"{name}_frauds"] = int(out[LABEL].sum())
        print(f"Wrote {name}: {len(out)} rows, {summary[f'{name}_frauds']} frauds", flush=True)
    summary["scaled_columns"] = ",".join(SCALED)
    summary["split_seed"] = args.seed
    summary["scaler_mean"] = scaler.mean_.tolist()
    summary["scaler_scale"] = scaler.scale_.tolist()
    with open(os.path.join(OUTPUT_DIR, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)


if __name__ == "__main__":
    main()
