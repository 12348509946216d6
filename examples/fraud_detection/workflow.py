"""Credit-card fraud detection with XGBoost, tracked with tallymark: a notebook as a script.

This is the workflow behind ``tallymark demo`` written the way a data scientist would write it:
plain pandas / scikit-learn / XGBoost, plus a handful of tallymark calls. Run it with

    python examples/fraud_detection/workflow.py                      # synthetic data, full size
    python examples/fraud_detection/workflow.py --rows 50000         # smaller, faster
    python examples/fraud_detection/workflow.py --data creditcard.csv  # the real Kaggle file

then look at the result with ``tallymark ui``. Each ``# %%`` block is a notebook cell.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import xgboost as xgb
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import tallymark
from tallymark.demo.data import generate, load_csv
from tallymark.demo.train import downsample_curve

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", help="CSV with the Kaggle creditcard.csv columns (default: synthetic data)")
parser.add_argument("--rows", type=int, default=284_807, help="rows of synthetic data (default: 284,807)")
parser.add_argument("--workspace", default="demo")
parser.add_argument("--project", default="fraud-detection")
parser.add_argument("--learning-rate", type=float, default=0.15)
parser.add_argument("--num-round", type=int, default=100)
args = parser.parse_args()

# %% Load the transactions: 0.17 % of them are frauds.
df = load_csv(args.data) if args.data else generate(args.rows, seed=0)
print(f"{len(df):,} transactions, {df['Class'].sum():,} frauds ({df['Class'].mean():.4%})")

# %% Drop exact duplicates, so that no transaction lands in both the training and the test set.
rows_raw = len(df)
df = df.drop_duplicates()
duplicates = rows_raw - len(df)

# %% Stratified 70 / 15 / 15 split: each part keeps the same (tiny) share of frauds.
X, y = df.drop(columns="Class"), df["Class"]
X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.30, stratify=y, random_state=0)
X_val, X_test, y_val, y_test = train_test_split(
    X_rest, y_rest, test_size=0.50, stratify=y_rest, random_state=0
)

# %% Scale the two raw columns with statistics of the training split only (V1..V28 are PCA output).
raw = ["Time", "Amount"]
scaler = StandardScaler().fit(X_train[raw])


def scaled(part: pd.DataFrame) -> pd.DataFrame:
    part = part.copy()
    part[raw] = scaler.transform(part[raw])
    return part


X_train, X_val, X_test = scaled(X_train), scaled(X_val), scaled(X_test)

# %% Start an experiment and record what goes in.
params = {
    "objective": "binary:logistic",
    "num_round": args.num_round,
    "eval_metric": "auc",
    "learning_rate": args.learning_rate,
    "booster": "gbtree",
}
exp = tallymark.Experiment(
    project_name=args.project, workspace=args.workspace, name="notebook-xgboost", tags=["example", "xgboost"]
)
exp.log_parameters(params)
exp.log_others(
    {
        "data": args.data or f"synthetic rows={args.rows} seed=0",
        "rows": len(df),
        "frauds": int(y.sum()),
        "duplicates_dropped": duplicates,
    }
)


# %% Train, logging the AUC on the training and validation sets after every round.
class LogAUC(xgb.callback.TrainingCallback):
    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        for split, metrics in evals_log.items():  # "train", "validation"
            exp.log_metric(f"{split}_auc", metrics["auc"][-1], step=epoch + 1)
        return False


dtrain = xgb.DMatrix(X_train, label=y_train)
dval = xgb.DMatrix(X_val, label=y_val)
dtest = xgb.DMatrix(X_test, label=y_test)
booster = xgb.train(
    {k: v for k, v in params.items() if k != "num_round"} | {"seed": 0, "nthread": 2},
    dtrain,
    num_boost_round=params["num_round"],
    evals=[(dtrain, "train"), (dval, "validation")],
    verbose_eval=False,
    callbacks=[LogAUC()],
)

# %% Evaluate on the test set. With so few frauds, AUC-PR says more than ROC AUC.
scores = booster.predict(dtest)
predicted = (scores >= 0.5).astype(int)
metrics = {
    "test_precision": precision_score(y_test, predicted, zero_division=0),
    "test_recall": recall_score(y_test, predicted),
    "test_f1": f1_score(y_test, predicted),
    "test_auc_roc": roc_auc_score(y_test, scores),
    "test_auc_pr": average_precision_score(y_test, scores),
}
exp.log_metrics(metrics)
exp.log_confusion_matrix(
    y_true=y_test, y_predicted=predicted, labels=["Normal", "Fraud"], title="Test confusion matrix"
)
fpr, tpr, _ = roc_curve(y_test, scores)
fpr, tpr = downsample_curve(fpr, tpr)  # at most 500 points, endpoints kept
exp.log_curve("roc_curve", x=fpr, y=tpr)
precision, recall, _ = precision_recall_curve(y_test, scores)
recall, precision = downsample_curve(recall, precision)
exp.log_curve("pr_curve", x=recall, y=precision)

# %% Keep the model with the experiment, then finish.
with tempfile.TemporaryDirectory() as folder:
    model_path = Path(folder) / "fraud-xgboost.json"
    booster.save_model(model_path)
    exp.log_model("fraud-xgboost", model_path)
exp.end()

for name, value in metrics.items():
    print(f"{name:>15}: {value:.4f}")
print(f"experiment {exp.get_key()}: {exp.url}")
