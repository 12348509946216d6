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
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated subset of P1,P2,P3,P4,P5,P7,P8,S (both sides; S = serving)",
    )
    ap.add_argument("--skip-serving", action="store_true", help="no serving rows (bench/serving.py)")
    ap.add_argument(
        "--markdown",
        default=str(harness.BENCH_DIR / "results.md"),
        help="write the table as markdown here too",
    )
    args = ap.parse_args()
    only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    tracking = ",".join(x for x in only if x.startswith("P"))
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        results = []
        if not only or tracking:
            ours = Path(tmp) / "tallymark.json"
            cmd = [sys.executable, str(harness.BENCH_DIR / "tallymark_side.py"), "--out", str(ours)]
            if args.quick:
                cmd.append("--quick")
            if tracking:
                cmd += ["--only", tracking]
            subprocess.run(cmd, check=True, cwd=tmp)
            results += harness.load_results(ours)
            if not args.skip_mlflow:
                results += harness.run_mlflow_side(args.quick, only=tracking or None)
        if not args.skip_serving and (not only or any(x.startswith("S") for x in only)):
            # The serving rows: a tallymark endpoint beside `mlflow models serve` (bench/serving.py).
            import serving

            harness.BENCHES.update(serving.BENCHES)
            harness.TARGETS.extend(serving.TARGETS)
            out = Path(tmp) / "serving.json"
            cmd = [sys.executable, str(harness.BENCH_DIR / "serving.py"), "--out", str(out)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--skip-mlflow"] if args.skip_mlflow else []
            subprocess.run(cmd, check=True, cwd=tmp)
            results += harness.load_results(out)
    env = harness.env_info()
    harness.print_table(
        results,
        markdown_path=args.markdown,
        title=f"tallymark vs MLflow — {env.get('cpus', '?')} CPUs, load {harness.loadavg()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
