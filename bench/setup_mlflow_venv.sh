#!/usr/bin/env bash
# Create .bench-venv (repo root, git-ignored) with MLflow for the comparison benchmarks.
# Idempotent: a stamp file records the installed MLflow version; re-running is a no-op.
#
#   bash bench/setup_mlflow_venv.sh            # installs mlflow==$MLFLOW_VERSION
#   MLFLOW_VERSION=3.16.1 bash bench/setup_mlflow_venv.sh
#
# MLflow is kept out of the project's own .venv on purpose: it pins many packages of its
# own (sqlalchemy, alembic, fastapi, ...) and must not change what tallymark is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
MLFLOW_VERSION="${MLFLOW_VERSION:-3.17.2}"
# The serving rows (bench/serving.py) load the same XGBoost model on both sides: keep the versions equal.
XGBOOST_VERSION="${XGBOOST_VERSION:-3.2.0}"
VENV="${BENCH_VENV:-.bench-venv}"
STAMP="$VENV/.mlflow-$MLFLOW_VERSION-p8-xgb$XGBOOST_VERSION.installed"

if [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
# The full `mlflow` package (needed for `mlflow server`) pulls no torch/CUDA wheels; its
# `auth` extra (Flask-WTF) is what `mlflow server --app-name basic-auth` needs (P8), and P8 uses
# the same HTTP client (httpx) as tallymark's side. Nothing else: bench/harness.py is
# stdlib-only when imported there.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "mlflow[auth]==$MLFLOW_VERSION" "httpx>=0.27"
# `mlflow models serve --env-manager local` serves a pyfunc model in this venv: the flavour's library
# (xgboost, CPU build as tallymark's own) and the scoring server (uvicorn/fastapi, already pulled by
# mlflow 3) are all it needs.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "xgboost-cpu==$XGBOOST_VERSION"
"$VENV/bin/python" -c "import mlflow, xgboost; print('mlflow', mlflow.__version__, 'xgboost', xgboost.__version__, 'ready in $VENV')"
rm -f "$VENV"/.mlflow-*.installed
touch "$STAMP"
