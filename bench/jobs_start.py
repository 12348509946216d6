"""How fast a local job starts: submit → the script's first output line, and the script's process
start → its first line (namespace set-up included). Issue 10's goal: < 200 ms locally.

    PYTHONPATH=src .venv/bin/python bench/jobs_start.py [--runs 10]

Each run submits a TrainingJob whose script prints ``time.time()`` first thing, in a fresh
embedded home whose store is already open (the first open of a home is not the job's cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SCRIPT = (
    "import time\nprint(time.time(), flush=True)\n"
    "import os\nopen(os.environ['SM_MODEL_DIR'] + '/m', 'w').write('x')\n"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TALLYMARK_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("TALLYMARK_URL", None)
        script = Path(tmp) / "first_line.py"
        script.write_text(SCRIPT)
        from tallymark.jobs import TrainingJob

        submit, spawn = [], []
        for _ in range(args.runs + 1):
            job = TrainingJob(entry_point=str(script), workspace="bench", max_run=60)
            job.transport.call("list_jobs", workspace="bench")  # the store is open
            t0 = time.time()
            job.fit()
            first = float(job.logs().split()[0])
            started = job.refresh()["started_at"] / 1000
            submit.append((first - t0) * 1000)
            spawn.append((first - started) * 1000)
        submit, spawn = submit[1:], spawn[1:]  # the first run warms the page cache
        for what, xs in (("submit -> first line", submit), ("process start -> first line", spawn)):
            med = statistics.median(xs)
            print(f"{what:30s} median {med:6.1f} ms   min {min(xs):6.1f}   max {max(xs):6.1f}")


if __name__ == "__main__":
    main()
