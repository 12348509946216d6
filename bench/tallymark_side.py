"""tallymark's half of the benchmark suite (runs in the project's .venv).

    python bench/tallymark_side.py --out results.json [--quick]

Each benchmark runs in a fresh embedded home (or a fresh server) in a temporary folder:
P1 log_metric cost, P2 ingest until durable (embedded and via the server), P3 reading 100
histories, P4 a param + metric query over 10k experiments, P5 server start and idle memory,
P7 import time. Sizes are the issue's; --quick shrinks them for a smoke run.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Result  # noqa: E402

SYSTEM = "tallymark"
QUIET = {
    "log_code": False,
    "log_env": False,
    "log_git": False,
    "log_system_metrics": False,
    "capture_stdout": False,
}


_HOMES: list[Path] = []


def _fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    _HOMES.append(home)
    os.environ["TALLYMARK_HOME"] = str(home)
    os.environ.pop("TALLYMARK_URL", None)
    return home


def p1_log_metric(n: int) -> list[Result]:
    import tallymark

    _fresh_home()
    exp = tallymark.Experiment(project_name="bench", workspace="p1", send_interval=3600, **QUIET)
    exp.flush()
    log = exp.log_metric
    t0 = time.perf_counter()
    for i in range(n):
        log("loss", 0.5, step=i)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    exp.flush()
    drain = time.perf_counter() - t1
    exp.end()
    return [
        Result("P1", SYSTEM, "log_metric", f"{n:,} calls", dt / n * 1e6, "µs/call", dt, n),
        Result("P1.drain", SYSTEM, "flush after logging", f"{n:,} points", n / drain, "points/s", drain, n),
    ]


def _ingest(steps: int, metrics: int, url: str | None, background: bool) -> tuple[float, float, int]:
    """(seconds from the first log_metric to flush() returned, seconds of flush alone, points).

    ``background=False`` keeps the sender asleep while logging, so ``flush`` ingests every point:
    that is the ingest throughput (like MLflow's log_batch of prepared batches). With the sender
    awake, shipping overlaps the logging loop: the end-to-end figure.
    """
    import tallymark

    exp = tallymark.Experiment(
        project_name="bench", workspace="p2", url=url, send_interval=1.0 if background else 3600.0, **QUIET
    )
    exp.flush()
    names = [f"metric_{j}" for j in range(metrics)]
    log = exp.log_metric
    t0 = time.perf_counter()
    for i in range(steps):
        for name in names:
            log(name, i * 0.001, step=i)
    t1 = time.perf_counter()
    exp.flush()
    t2 = time.perf_counter()
    exp.end()
    return t2 - t0, t2 - t1, steps * metrics


def _p2(bench: str, label: str, steps: int, metrics: int, url: str | None, note: str) -> list[Result]:
    size = f"{metrics} metrics × {steps:,} steps"
    _, flush, n = _ingest(steps, metrics, url, background=False)
    total, _, _ = _ingest(steps, metrics, url, background=True)
    return [
        Result(
            bench,
            SYSTEM,
            f"flush of buffered points until durable, {label}",
            size,
            n / flush,
            "points/s",
            flush,
            n,
            variant="ingest",
            notes=note,
        ),
        Result(
            bench,
            SYSTEM,
            f"log_metric loop + flush, {label}",
            size,
            n / total,
            "points/s",
            total,
            n,
            variant="end-to-end incl. 1 M log_metric calls",
            primary=False,
        ),
    ]


def p2_ingest(steps: int, metrics: int) -> list[Result]:
    _fresh_home()
    out = _p2("P2.embedded", "embedded", steps, metrics, None, "SQLite WAL, synchronous=FULL")
    home = _fresh_home()
    port = harness.free_port()
    cmd = [
        sys.executable,
        "-m",
        "tallymark",
        "server",
        "--no-auth",
        "--port",
        str(port),
        "--home",
        str(home / "srv"),
    ]
    proc = harness.start_process(cmd, log_path=home / "server.log")
    try:
        harness.wait_http(f"http://127.0.0.1:{port}/api/v1/health", timeout=60)
        out += _p2(
            "P2.server",
            "via the server",
            steps,
            metrics,
            f"http://127.0.0.1:{port}",
            "one uvicorn worker, SQLite, binary batches",
        )
    finally:
        harness.stop_process(proc)
    return out


def _seed_histories(runs: int, steps: int) -> list[str]:
    import numpy as np

    from tallymark.sdk.transport import LocalTransport
    from tallymark.service import batch, experiments

    store = LocalTransport().store
    keys = []
    rng = np.random.default_rng(0)
    for i in range(runs):
        key = f"{i + 1:032x}"
        experiments.create_experiment(store, {"key": key, "workspace": "p3", "project": "histories"}, "bench")

        def packed(a: np.ndarray) -> dict[str, str]:
            return {"dtype": a.dtype.str, "b64": base64.b64encode(a.tobytes()).decode()}

        batch.apply_batch(
            store,
            key,
            {
                "batch_id": "seed",
                "metrics": [
                    {
                        "name": "loss",
                        "steps": packed(np.arange(steps, dtype="<i8")),
                        "values": packed(rng.random(steps).astype("<f8")),
                    }
                ],
            },
        )
        keys.append(key)
    store.close()
    return keys


def p3_histories(runs: int, steps: int) -> list[Result]:
    import tallymark

    _fresh_home()
    keys = _seed_histories(runs, steps)
    api = tallymark.API()
    api.get_metric_series(keys[:2], "loss")  # warm up: open the store, import numpy
    times, lists = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        series = api.get_metric_series(keys, "loss", as_numpy=True)
        times.append(time.perf_counter() - t0)
        assert sum(len(s["steps"]) for s in series.values()) == runs * steps
        t0 = time.perf_counter()
        api.get_metric_series(keys, "loss")
        lists.append(time.perf_counter() - t0)
    best = min(times)
    scale = (100 * 10_000) / (runs * steps)  # the nominal size is 100 runs × 10k steps
    one = []
    for _ in range(3):
        t0 = time.perf_counter()
        for k in keys:
            api.get_experiment_by_key(k).get_metric_series("loss")
        one.append(time.perf_counter() - t0)
    return [
        Result(
            "P3",
            SYSTEM,
            "API.get_metric_series(keys, name, as_numpy=True)",
            f"{runs} runs × {steps:,} steps",
            best * 1000 * scale,
            "ms",
            best,
            runs * steps,
            extrapolated=scale != 1,
            notes=f"median {harness.median(times) * 1000:.0f} ms; as Python lists "
            f"{min(lists) * 1000:.0f} ms; one call per run (lists) {min(one) * 1000:.0f} ms",
        )
    ]


def p4_query(runs: int) -> list[Result]:
    import numpy as np

    from tallymark.sdk.transport import LocalTransport
    from tallymark.service import batch, experiments, reads

    _fresh_home()
    store = LocalTransport().store
    rng = np.random.default_rng(1)
    lrs = [0.05, 0.1, 0.15, 0.2, 0.3]
    for i in range(runs):
        key = f"{i + 1:032x}"
        experiments.create_experiment(store, {"key": key, "workspace": "p4", "project": "query"}, "bench")
        batch.apply_batch(
            store,
            key,
            {
                "batch_id": "seed",
                "params": {
                    "learning_rate": lrs[i % len(lrs)],
                    "max_depth": int(rng.integers(2, 10)),
                    "booster": "gbtree",
                },
                "metrics": [
                    {"name": "auc", "steps": [0], "values": [float(rng.random())]},
                    {"name": "loss", "steps": [0], "values": [float(rng.random())]},
                ],
            },
        )
    q = "params.learning_rate = 0.15 and metrics.auc > 0.9"
    reads.query_experiments(store, "p4", "query", q)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        res = reads.query_experiments(store, "p4", "query", q, per_page=100)
        times.append(time.perf_counter() - t0)
    store.close()
    best = min(times)
    return [
        Result(
            "P4",
            SYSTEM,
            "query, first page of 100",
            f"{runs:,} runs",
            best * 1000,
            "ms",
            best,
            runs,
            notes=f"{res['total']} matches; median {harness.median(times) * 1000:.0f} ms",
        )
    ]


def p5_server() -> list[Result]:
    home = _fresh_home()
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    open_store(Settings(home=home / "srv")).close()  # migrated beforehand, as after `db upgrade`
    port = harness.free_port()
    t0 = time.perf_counter()
    proc = harness.start_process(
        [
            sys.executable,
            "-m",
            "tallymark",
            "server",
            "--no-auth",
            "--port",
            str(port),
            "--home",
            str(home / "srv"),
        ],
        log_path=home / "server.log",
    )
    try:
        first = harness.wait_http(
            f"http://127.0.0.1:{port}/api/v1/health", timeout=60, interval=0.005, proc=proc, t0=t0
        )
        harness.wait_idle(proc.pid)
        mem = harness.tree_memory(proc.pid)
    finally:
        harness.stop_process(proc)
    rss_mb = mem["rss_bytes"] / 1e6
    return [
        Result("P5.first_request", SYSTEM, "spawn → first /api/v1/health", "1 worker", first, "s", first),
        Result(
            "P5.idle_rss",
            SYSTEM,
            "idle RSS",
            "1 worker",
            rss_mb,
            "MB",
            0.0,
            notes=f"{mem.get('processes', 1)} process(es)",
        ),
    ]


def p7_import() -> list[Result]:
    times = harness.import_time("tallymark", repeat=5)
    best = min(times)
    return [
        Result(
            "P7",
            SYSTEM,
            "python -c 'import tallymark'",
            "cold process",
            best,
            "s",
            best,
            notes="time of the import statement in a fresh interpreter",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    args = ap.parse_args(argv)
    q = args.quick
    results: list[Result] = []
    steps = [
        ("P1", lambda: p1_log_metric(20_000 if q else 1_000_000)),
        ("P2", lambda: p2_ingest(2_000 if q else 100_000, 10)),
        ("P3", lambda: p3_histories(10 if q else 100, 1_000 if q else 10_000)),
        ("P4", lambda: p4_query(500 if q else 10_000)),
        ("P5", p5_server),
        ("P7", p7_import),
    ]
    for name, fn in steps:
        harness.progress(f"tallymark {name} …")
        results.extend(fn())
    harness.write_results(args.out, results, SYSTEM, version=_version(), env=harness.env_info())
    import shutil

    for home in _HOMES:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _version() -> str:
    import tallymark

    return tallymark.__version__


if __name__ == "__main__":
    raise SystemExit(main())
