"""`make bench`: tallymark and MLflow on the same machine, in the same run, in one table.

    python bench/run.py [--quick] [--skip-mlflow] [--only P2,P8] [--markdown bench/results.md]

tallymark's side runs in this venv (bench/tallymark_side.py); MLflow's in its own venv
(.bench-venv, created by bench/setup_mlflow_venv.sh), so neither's dependencies touch the other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--skip-mlflow", action="store_true", help="only tallymark's side")
    ap.add_argument("--only", default="", help="comma-separated subset of P1,P2,P3,P4,P5,P7,P8 (both sides)")
    ap.add_argument(
        "--markdown",
        default=str(harness.BENCH_DIR / "results.md"),
        help="write the table as markdown here too",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        ours = Path(tmp) / "tallymark.json"
        cmd = [sys.executable, str(harness.BENCH_DIR / "tallymark_side.py"), "--out", str(ours)]
        if args.quick:
            cmd.append("--quick")
        if args.only:
            cmd += ["--only", args.only]
        subprocess.run(cmd, check=True, cwd=tmp)
        results = harness.load_results(ours)
        if not args.skip_mlflow:
            results += harness.run_mlflow_side(args.quick, only=args.only or None)
    env = harness.env_info()
    harness.print_table(
        results,
        markdown_path=args.markdown,
        title=f"tallymark vs MLflow — {env.get('cpus', '?')} CPUs, load {harness.loadavg()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
