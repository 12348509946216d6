"""MLflow half of the tallymark benchmark suite (P1-P5, P7).

Runs inside ``.bench-venv`` (see ``bench/setup_mlflow_venv.sh``)::

    .bench-venv/bin/python bench/mlflow_side.py --out mlflow.json [--quick] [--only P1,P4]

Everything happens in a temporary directory (on the same disk as the system temp dir unless
``--tmpdir`` says otherwise); the ``mlflow server`` instances it starts listen on 127.0.0.1 on
a free port and are stopped (their own process group only) before it returns.

MLflow is much slower than the sizes of the tallymark workload allow on a 2-core box, so
each benchmark uses the size in :data:`SIZES` and says so in its result; figures are per
unit (per call, per point, points/s), and P3 is also extrapolated linearly to its nominal
size.  Setting up P3/P4 (1 M metric rows, 10 k runs) through MLflow's API would take far
longer than the measurement itself, so those stores are filled by cloning, in SQL, rows that
MLflow itself wrote for a few template runs (same tables, same columns, same indexes); the
measured reads and queries go through MLflow's public API only and their row counts are
checked.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

# Keep MLflow quiet and offline: no telemetry, no git probing, no auto-async.
for _k, _v in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
}.items():
    os.environ[_k] = _v
os.environ.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)  # set per variant in P1

SYSTEM = "mlflow"
NOMINAL_P3 = (100, 10_000)  # runs x steps of the tallymark workload
LR_VALUES = ["0.01", "0.02", "0.05", "0.08", "0.1", "0.15", "0.2", "0.3", "0.5", "1.0"]
BUFFERING_ENV = "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"
SETTLE_TIMEOUT = 90.0  # s to wait for a started server to go idle before reading its RSS
HUEY_ENV = "_MLFLOW_HUEY_STORAGE_PATH"  # where `mlflow server` keeps its job queues
STOP_TIMEOUT = 8.0  # s of SIGTERM grace for a server before SIGKILL
P4_FILTER = "params.learning_rate = '0.15' and metrics.auc > 0.9"

SIZES: dict[str, dict[str, int]] = {
    # Chosen so that the whole MLflow side stays within ~5 minutes on 2 cores.
    "full": {
        "p1_sync": 250,  # mlflow.log_metric calls, synchronous (default) mode
        "p1_async": 500,  # ... with synchronous=False (drains at ~20 ms/point)
        "p1_async_buffered": 2_000,  # ... plus MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1
        "p2_steps": 2_000,  # x 10 metrics, embedded sqlite store
        "p2_server_steps": 2_000,  # x 10 metrics, through `mlflow server`
        "p3_runs": 10,  # ~70 µs/point: 100 runs would take ~70 s; extrapolated to 100 runs
        "p3_steps": 10_000,
        "p4_runs": 10_000,
        "p4_repeat": 3,
        "p5_default_server": 1,  # also start `mlflow server` with its defaults (slow: 4 workers + jobs)
        "p7_repeat": 3,
        "p8_plain": 300,  # small GETs + POSTs against `mlflow server` (no auth; auth with its cache)
        "p8_auth": 40,  # ... with basic-auth's defaults: a password hash per request (~0.3 s)
    },
    "quick": {
        "p1_sync": 20,
        "p1_async": 50,
        "p1_async_buffered": 50,
        "p2_steps": 200,
        "p2_server_steps": 200,
        "p3_runs": 3,
        "p3_steps": 1_000,
        "p4_runs": 300,
        "p4_repeat": 1,
        "p5_default_server": 0,
        "p7_repeat": 1,
        "p8_plain": 50,
        "p8_auth": 10,
    },
}


def _result(**kw: Any) -> H.Result:
    r = H.Result(system=SYSTEM, **kw)
    H.progress(f"{r.bench} {r.variant or ''}: {H.fmt_num(r.value)} {r.unit} ({r.size}, {r.total_s:.2f} s)")
    return r


# --------------------------------------------------------------------------- stores


class Stores:
    """Fresh, already-migrated sqlite stores: MLflow's schema is created once (in tmpfs when
    available, it runs ~40 migrations) and the empty database is copied for each benchmark."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shm = Path("/dev/shm")
        tdir = Path(tempfile.mkdtemp(prefix="mlflow-template-", dir=shm if shm.is_dir() else root))
        try:
            from mlflow import MlflowClient

            tmpl = tdir / "mlflow.db"
            MlflowClient(tracking_uri=f"sqlite:///{tmpl}").search_experiments()
            self.template = root / "template.db"
            shutil.copyfile(tmpl, self.template)
        finally:
            shutil.rmtree(tdir, ignore_errors=True)

    def new(self, name: str) -> tuple[Path, str]:
        d = self.root / name
        d.mkdir()
        db = d / "mlflow.db"
        shutil.copyfile(self.template, db)
        return d, f"sqlite:///{db}"


def _experiment(client: Any, d: Path, name: str) -> str:
    return client.create_experiment(name, artifact_location=(d / "artifacts").as_uri())


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]


def sql_clone_runs(
    db: Path,
    templates: list[str],
    count: int,
    edit: Callable[[int, str, dict[str, Any]], dict[str, Any] | None],
) -> list[str]:
    """Insert ``count`` copies of the template runs (every row of every table keyed by
    ``run_uuid``), each with a fresh run id; ``edit(i, table, row)`` may change a row or drop
    it (None).  Returns the new run ids."""
    con = sqlite3.connect(db)
    try:
        tables = [
            t
            for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if "run_uuid" in _columns(con, t)
        ]
        cols = {t: _columns(con, t) for t in tables}
        tmpl: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for tid in templates:
            tmpl[tid] = {}
            for t in tables:
                rows = con.execute(f'SELECT * FROM "{t}" WHERE run_uuid = ?', (tid,)).fetchall()
                tmpl[tid][t] = [dict(zip(cols[t], row, strict=True)) for row in rows]
        out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        ids = []
        for i in range(count):
            rid = uuid.uuid4().hex
            ids.append(rid)
            for t, rows in tmpl[templates[i % len(templates)]].items():
                for row in rows:
                    new = edit(i, t, {**row, "run_uuid": rid})
                    if new is not None:
                        out[t].append(tuple(new[c] for c in cols[t]))
        with con:
            for t, rows in out.items():
                marks = ", ".join("?" for _ in cols[t])
                con.executemany(f'INSERT INTO "{t}" VALUES ({marks})', rows)
        return ids
    finally:
        con.close()


def sql_fill_history(
    db: Path, run_ids: list[str], key: str, steps: int, value: Callable[[int], float]
) -> None:
    """Extend each run's one-row history of ``key`` (step 0, written by MLflow) to ``steps``
    steps, and move its latest_metrics row to the last step."""
    con = sqlite3.connect(db)
    try:
        mcols = _columns(con, "metrics")
        marks = ", ".join("?" for _ in mcols)
        with con:
            for rid in run_ids:
                sel = "SELECT * FROM metrics WHERE run_uuid = ? AND key = ?"
                row = con.execute(sel, (rid, key)).fetchone()
                base = dict(zip(mcols, row, strict=True))
                ts0 = base["timestamp"]
                rows = []
                for s in range(1, steps):
                    r = {**base, "step": s, "value": value(s), "timestamp": ts0 + s}
                    rows.append(tuple(r[c] for c in mcols))
                con.executemany(f"INSERT INTO metrics VALUES ({marks})", rows)
                last = steps - 1
                upd = "UPDATE latest_metrics SET step = ?, value = ?, timestamp = ?"
                upd += " WHERE run_uuid = ? AND key = ?"
                con.execute(upd, (last, value(last), ts0 + last, rid, key))
    finally:
        con.close()


# --------------------------------------------------------------------------- P1


def bench_p1(stores: Stores, n_sync: int, n_async: int, n_buffered: int) -> list[H.Result]:
    import mlflow
    from mlflow import MlflowClient

    d, uri = stores.new("p1")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = _experiment(client, d, "p1")
    out = []

    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_metric("warmup", 0.0, step=0)
        with H.timer() as t:
            for i in range(n_sync):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    assert len(client.get_metric_history(run.info.run_id, "loss")) == n_sync
    out.append(
        _result(
            bench="P1",
            name="mlflow.log_metric (synchronous, default), sqlite store",
            variant="sync",
            primary=False,
            size=f"{n_sync:,} calls",
            n=n_sync,
            total_s=t.seconds,
            value=t.seconds / n_sync * 1e6,
            unit="µs/call",
            notes="each call commits to sqlite before returning",
        )
    )

    # MLflow's async queue hands each call to its writer thread pool on its own unless
    # MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS is set, in which case it merges what queued up
    # meanwhile into log_batch calls. Both are measured.
    # The faster of the two is the primary figure (compared with tallymark) on each row.
    async_out: list[H.Result] = []
    for variant, buffering, n in (("async", None, n_async), ("async, buffered 1 s", "1", n_buffered)):
        if buffering is not None:
            os.environ[BUFFERING_ENV] = buffering
        try:
            with mlflow.start_run(experiment_id=exp) as run:
                mlflow.log_metric("warmup", 0.0, step=0, synchronous=False)
                mlflow.flush_async_logging()
                with H.timer() as t:
                    for i in range(n):
                        mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=False)
                with H.timer() as drain:
                    mlflow.flush_async_logging()
        finally:
            os.environ.pop(BUFFERING_ENV, None)
        assert len(client.get_metric_history(run.info.run_id, "loss")) == n
        env_note = f"{BUFFERING_ENV}={buffering}" if buffering else f"{BUFFERING_ENV} unset"
        async_out.append(
            _result(
                bench="P1",
                name="mlflow.log_metric(synchronous=False), sqlite store",
                variant=variant,
                size=f"{n:,} calls",
                n=n,
                total_s=t.seconds,
                value=t.seconds / n * 1e6,
                unit="µs/call",
                notes=f"calling-thread cost while the async queue writes in the background; {env_note}",
            )
        )
        async_out.append(
            _result(
                bench="P1.drain",
                name="mlflow.flush_async_logging() after the async calls",
                variant=variant,
                size=f"{n:,} points",
                n=n,
                total_s=drain.seconds,
                value=drain.seconds / n * 1e6,
                unit="µs/point",
                notes=f"flush time after the last call, per logged point; {env_note}",
                extra={
                    "drain_s": drain.seconds,
                    "calls_plus_drain_s": t.seconds + drain.seconds,
                    "durable_points_per_s": n / (t.seconds + drain.seconds),
                },
            )
        )
    for bench in ("P1", "P1.drain"):
        rows = [r for r in async_out if r.bench == bench]
        best = min(rows, key=lambda r: r.value)
        for r in rows:
            r.primary = r is best
    out += async_out
    return out


# --------------------------------------------------------------------------- P2


def _p2_batches(steps: int, metrics: int = 10, batch: int = 1000) -> list[list[Any]]:
    from mlflow.entities import Metric

    rng = random.Random(2)
    ts = int(time.time() * 1000)
    flat = [Metric(f"m{k}", rng.random(), ts + s, s) for s in range(steps) for k in range(metrics)]
    return [flat[i : i + batch] for i in range(0, len(flat), batch)]


def _p2_ingest(client: Any, run_id: str, steps: int) -> tuple[float, int]:
    batches = _p2_batches(steps)
    points = sum(len(b) for b in batches)
    with H.timer() as t:
        for b in batches:
            client.log_batch(run_id, metrics=b)
    got = len(client.get_metric_history(run_id, "m9"))
    assert got == steps, (got, steps)
    return t.seconds, points


def bench_p2_embedded(stores: Stores, steps: int) -> list[H.Result]:
    from mlflow import MlflowClient

    d, uri = stores.new("p2")
    client = MlflowClient(uri)
    run_id = client.create_run(_experiment(client, d, "p2")).info.run_id
    secs, points = _p2_ingest(client, run_id, steps)
    return [
        _result(
            bench="P2.embedded",
            name="MlflowClient.log_batch (1000 metrics/batch), sqlite store",
            size=f"10 × {steps:,} steps = {points:,} points",
            n=points,
            total_s=secs,
            value=points / secs,
            unit="points/s",
            notes="durable when log_batch returns (committed)",
        )
    ]


# --------------------------------------------------------------------------- P5 (+ P2 via server)


def _server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def _start_server(d: Path, uri: str, args: list[str], env: dict[str, str]) -> tuple[Any, str, float]:
    port = H.free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    cmd = [mlflow_bin, "server", "--backend-store-uri", uri, "--default-artifact-root"]
    cmd += [(d / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port), *args]
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = H.start_process(cmd, d / "server.log", env=env, cwd=d)
    try:
        first = H.wait_http(f"{base}/health", timeout=300, proc=proc, t0=t0)
    except BaseException:
        _stop_server(proc)
        raise
    return proc, base, first


def _huey_dirs(pid: int) -> set[Path]:
    """The job runner's storage dirs (``mkdtemp`` in /dev/shm, which MLflow never removes)."""
    found = set()
    for p in H.tree_pids(pid):
        try:
            environ = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(HUEY_ENV.encode() + b"="):
                found.add(Path(item.split(b"=", 1)[1].decode()))
    return found


def _stop_server(proc: Any) -> None:
    leftovers = _huey_dirs(proc.pid)
    H.stop_process(proc, timeout=STOP_TIMEOUT)
    for d in leftovers:
        if d.is_dir() and d.name.startswith("tmp"):
            shutil.rmtree(d, ignore_errors=True)


def _p5_results(variant: str, primary: bool, first: float, settle: float, mem: dict[str, Any], note: str):
    mb = mem["rss_bytes"] / 1e6
    pss = mem["pss_bytes"] / 1e6 if mem["pss_bytes"] is not None else None
    return [
        _result(
            bench="P5.first_request",
            name="mlflow server: start to first 200 from /health",
            variant=variant,
            primary=primary,
            size="1 start",
            n=1,
            total_s=first,
            value=first,
            unit="s",
            notes=note,
            extra={"settle_s": settle, "settled": settle < SETTLE_TIMEOUT},
        ),
        _result(
            bench="P5.idle_rss",
            name="mlflow server: idle RSS, all processes of the server",
            variant=variant,
            primary=primary,
            size=f"{mem['processes']} processes",
            n=mem["processes"],
            total_s=first + settle,
            value=mb,
            unit="MB",
            notes=note + "; summed RSS (PSS in extra), measured once CPU use settled",
            extra={"pss_mb": pss, "processes": mem["processes"], "settled": settle < SETTLE_TIMEOUT},
        ),
    ]


def bench_server(stores: Stores, p2_steps: int | None, p5: bool, default_server: bool) -> list[H.Result]:
    """A lean `mlflow server` (P5 lean, then P2 through it), then one with the defaults (P5)."""
    from mlflow import MlflowClient

    out: list[H.Result] = []
    d, uri = stores.new("server-lean")
    env = _server_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    proc, base, first = _start_server(d, uri, ["--workers", "1"], env)
    try:
        H.progress(f"mlflow server (lean) answered after {first:.1f} s; waiting for it to settle")
        settle = H.wait_idle(proc.pid, timeout=SETTLE_TIMEOUT)
        mem = H.tree_memory(proc.pid)
        if p5:
            note = "--workers 1, MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false; existing sqlite store"
            out += _p5_results("lean", True, first, settle, mem, note)
        if p2_steps:
            client = MlflowClient(base)
            run_id = client.create_run(_experiment(client, d, "p2-server")).info.run_id
            secs, points = _p2_ingest(client, run_id, p2_steps)
            after = H.tree_memory(proc.pid)
            out.append(
                _result(
                    bench="P2.server",
                    name="MlflowClient.log_batch (1000 metrics/batch) via mlflow server (sqlite)",
                    size=f"10 × {p2_steps:,} steps = {points:,} points",
                    n=points,
                    total_s=secs,
                    value=points / secs,
                    unit="points/s",
                    notes="`mlflow server --workers 1`, 1 sequential client; durable when it answers",
                    extra={"server_rss_after_mb": after["rss_bytes"] / 1e6},
                )
            )
    finally:
        _stop_server(proc)

    if p5 and default_server:
        d, uri = stores.new("server-default")
        proc, base, first = _start_server(d, uri, [], _server_env())
        try:
            H.progress(f"mlflow server (defaults) answered after {first:.1f} s; waiting for it to settle")
            settle = H.wait_idle(proc.pid, timeout=SETTLE_TIMEOUT)
            mem = H.tree_memory(proc.pid)
            note = "defaults: 4 uvicorn workers + job runner (huey consumers); existing sqlite store"
            out += _p5_results("default", False, first, settle, mem, note)
        finally:
            _stop_server(proc)
    return out


# --------------------------------------------------------------------------- P3


def bench_p3(stores: Stores, runs: int, steps: int) -> list[H.Result]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    d, uri = stores.new("p3")
    db = d / "mlflow.db"
    client = MlflowClient(uri)
    exp = _experiment(client, d, "p3")
    tmpl = client.create_run(exp).info.run_id
    client.log_batch(tmpl, metrics=[Metric("loss", 1.0, int(time.time() * 1000), 0)])
    with H.timer() as fill:
        ids = [tmpl] + sql_clone_runs(db, [tmpl], runs - 1, lambda i, t, r: r)
        sql_fill_history(db, ids, "loss", steps, lambda s: 1.0 / (s + 1))
    H.progress(f"P3 store filled ({runs} runs × {steps:,} steps) in {fill.seconds:.1f} s")

    assert len(client.get_metric_history(ids[0], "loss")) == steps  # warm-up + check
    with H.timer() as t:
        got = [len(client.get_metric_history(rid, "loss")) for rid in ids]
    assert got == [steps] * runs, got[:5]

    points = runs * steps
    nominal = NOMINAL_P3[0] * NOMINAL_P3[1]
    total_ms = t.seconds * 1e3 * nominal / points
    return [
        _result(
            bench="P3",
            name="MlflowClient.get_metric_history for every run, sqlite store",
            size=f"{runs} runs × {steps:,} steps",
            n=points,
            total_s=t.seconds,
            value=total_ms,
            unit="ms",
            extrapolated=points != nominal,
            notes="value is the time for 100 × 10k points (linear extrapolation if the size is smaller)",
            extra={"per_point_us": t.seconds / points * 1e6, "fill_s": fill.seconds},
        )
    ]


# --------------------------------------------------------------------------- P4


def bench_p4(stores: Stores, runs: int, repeat: int) -> list[H.Result]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    d, uri = stores.new("p4")
    db = d / "mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = _experiment(client, d, "p4")
    rng = random.Random(4)
    lrs = [rng.choice(LR_VALUES) for _ in range(runs)]
    aucs = [round(rng.uniform(0.5, 1.0), 6) for _ in range(runs)]
    expected = sum(1 for lr, auc in zip(lrs, aucs, strict=True) if lr == "0.15" and auc > 0.9)

    n_tmpl = min(5, runs)
    ts = int(time.time() * 1000)
    templates = []
    for i in range(n_tmpl):
        rid = client.create_run(exp, run_name=f"run-{i}").info.run_id
        params = [Param("learning_rate", lrs[i]), Param("batch_size", "64"), Param("optimizer", "adam")]
        metrics = [Metric("auc", aucs[i], ts, 0), Metric("loss", 0.3, ts, 0)]
        client.log_batch(rid, metrics=metrics, params=params)
        client.set_terminated(rid)
        templates.append(rid)

    def edit(i: int, table: str, row: dict[str, Any]) -> dict[str, Any]:
        j = i + n_tmpl
        if table == "runs":
            row["name"] = f"run-{j}"
        elif table == "tags" and row["key"] == "mlflow.runName":
            row["value"] = f"run-{j}"
        elif table == "params" and row["key"] == "learning_rate":
            row["value"] = lrs[j]
        elif table in ("metrics", "latest_metrics") and row["key"] == "auc":
            row["value"] = aucs[j]
        return row

    with H.timer() as fill:
        sql_clone_runs(db, templates, runs - n_tmpl, edit)
    H.progress(f"P4 store filled ({runs:,} runs) in {fill.seconds:.1f} s; {expected} runs match")

    def query() -> Any:
        return mlflow.search_runs(experiment_ids=[exp], filter_string=P4_FILTER)

    with H.timer() as cold:
        df = query()
    assert len(df) == expected, (len(df), expected)
    times = H.time_call(query, repeat=repeat)
    with H.timer() as listed:
        lst = client.search_runs([exp], filter_string=P4_FILTER, max_results=50_000)
    assert len(lst) == expected
    value = H.median(times)
    return [
        _result(
            bench="P4",
            name="mlflow.search_runs(filter_string=...), sqlite store",
            size=f"{runs:,} runs ({expected} match)",
            n=runs,
            total_s=value,
            value=value * 1e3,
            unit="ms",
            notes=f"median of {repeat} after one cold call; filter: {P4_FILTER}",
            extra={
                "cold_ms": cold.seconds * 1e3,
                "samples_ms": [x * 1e3 for x in times],
                "client_search_runs_list_ms": listed.seconds * 1e3,
                "fill_s": fill.seconds,
                "matches": expected,
            },
        )
    ]


# --------------------------------------------------------------------------- P7


def bench_p7(repeat: int) -> list[H.Result]:
    samples = H.import_time("mlflow", repeat=repeat)
    best = min(samples)
    return [
        _result(
            bench="P7",
            name="`import mlflow` in a fresh interpreter",
            size=f"best of {repeat}",
            n=repeat,
            total_s=sum(samples),
            value=best,
            unit="s",
            extra={"samples_s": samples},
        )
    ]


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- P8

P8_ROUNDS = 4
P8_PASSWORD = "bench-admin-password-1234"  # MLflow ships none: the admin's is set on first start


def _p8_auth_ini(d: Path, cache_ttl: int) -> Path:
    """basic_auth.ini as MLflow documents it (its own file, with the admin and the auth database)."""
    ini = d / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{d / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {P8_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {cache_ttl}\n"
    )
    return ini


def _p8_block(client: Any, exp_id: str, run_id: str, n: int, start: int) -> tuple[list[float], list[float]]:
    """``n`` experiments/get and ``n`` runs/log-batch (2 params, 3 metrics); latencies in s."""
    gets, posts = [], []
    for i in range(start, start + n):
        t0 = time.perf_counter()
        r = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": exp_id})
        gets.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"P8 experiments/get answered {r.status_code}: {r.text[:200]}")
        ts = int(time.time() * 1000)
        body = {
            "run_id": run_id,
            "params": [{"key": f"p{i}_a", "value": str(i)}, {"key": f"p{i}_b", "value": "adam"}],
            "metrics": [
                {"key": "loss", "value": 1.0 / (i + 1), "timestamp": ts, "step": i},
                {"key": "acc", "value": 0.5, "timestamp": ts, "step": i},
                {"key": "lr", "value": 0.001, "timestamp": ts, "step": i},
            ],
        }
        t0 = time.perf_counter()
        r = client.post("/api/2.0/mlflow/runs/log-batch", json=body)
        posts.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"P8 runs/log-batch answered {r.status_code}: {r.text[:200]}")
    return gets, posts


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def bench_p8(stores: Stores, n_plain: int, n_auth: int) -> list[H.Result]:
    """The same small GET and POST as tallymark's P8 against `mlflow server` without auth and with
    `--app-name basic-auth` (HTTP basic, the admin), with its defaults and with its credential cache."""
    import httpx

    variants = {
        # name: (extra args, auth cache TTL or None for no auth, requests of each kind)
        "no auth": ([], None, n_plain),
        "basic-auth": (["--app-name", "basic-auth"], 0, n_auth),
        "basic-auth, cache 60 s": (["--app-name", "basic-auth"], 60, n_plain),
    }
    out: list[H.Result] = []
    medians: dict[str, dict[str, float]] = {}
    running: dict[str, Any] = {}  # name -> (proc, client, experiment id, run id)
    lat: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in variants}
    cpu_s = dict.fromkeys(variants, 0.0)
    try:
        for name, (args, ttl, n) in variants.items():
            d, uri = stores.new("p8-" + name.replace(" ", "").replace(",", "-"))
            env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
            auth = None
            if ttl is not None:
                env["MLFLOW_AUTH_CONFIG_PATH"] = str(_p8_auth_ini(d, ttl))
                env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "bench-" + os.urandom(16).hex()  # its CSRF secret
                auth = httpx.BasicAuth("admin", P8_PASSWORD)
            proc, base, first = _start_server(d, uri, ["--workers", "1", *args], _server_env(env))
            c = httpx.Client(base_url=base, auth=auth, timeout=120)
            running[name] = (proc, c, None, None)
            H.progress(f"P8 mlflow server ({name}) answered after {first:.1f} s")
            r = c.post("/api/2.0/mlflow/experiments/create", json={"name": "p8"})
            r.raise_for_status()
            exp_id = r.json()["experiment_id"]
            r = c.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp_id})
            r.raise_for_status()
            run_id = r.json()["run"]["info"]["run_id"]
            running[name] = (proc, c, exp_id, run_id)
            _p8_block(c, exp_id, run_id, max(3, n // 10), 0)  # warm up
        # The servers take turns, as on tallymark's side, so a change of load hits all of them.
        for rnd in range(P8_ROUNDS):
            for name, (_, _, n) in variants.items():
                proc, c, exp_id, run_id = running[name]
                per_round = max(1, n // P8_ROUNDS)
                c0 = H.tree_cpu_seconds(proc.pid)
                g, p = _p8_block(c, exp_id, run_id, per_round, 1000 + rnd * per_round)
                cpu_s[name] += H.tree_cpu_seconds(proc.pid) - c0
                lat[name][0].extend(g)
                lat[name][1].extend(p)
    finally:
        for proc, c, _, _ in running.values():
            c.close()
            _stop_server(proc)
    for name, (args, ttl, _) in variants.items():
        gets, posts = lat[name]
        n = len(gets)
        cpu = cpu_s[name] / (2 * n)
        medians[name] = {"GET": H.median(gets), "POST": H.median(posts)}
        cmdline = " ".join(["mlflow server --workers 1", *args])
        for method, xs, what in (
            ("get", gets, "GET /api/2.0/mlflow/experiments/get"),
            ("post", posts, "POST /api/2.0/mlflow/runs/log-batch: 2 params, 3 metrics"),
        ):
            out.append(
                _result(
                    bench=f"P8.{method}",
                    name=what,
                    variant=name,
                    primary=name == "basic-auth, cache 60 s",
                    size=f"{n:,} requests",
                    n=n,
                    total_s=sum(xs),
                    value=H.median(xs) * 1e6,
                    unit="µs",
                    notes=f"p95 {_pct(xs, 0.95) * 1e6:,.0f} µs; `{cmdline}`; "
                    f"server CPU {cpu * 1e6:,.0f} µs/request (GET and POST)"
                    + ("" if ttl is None else f"; HTTP basic auth as the admin, cache TTL {ttl} s"),
                    extra={
                        "p95_us": _pct(xs, 0.95) * 1e6,
                        "server_cpu_us_per_request": cpu * 1e6,
                        "auth_cache_ttl_s": ttl,
                    },
                )
            )
    for name in ("basic-auth", "basic-auth, cache 60 s"):
        for method in ("GET", "POST"):
            d_us = (medians[name][method] - medians["no auth"][method]) * 1e6
            out.append(
                _result(
                    bench="P8.overhead",
                    name=f"{name} − no auth, median {method}",
                    variant=f"{name}, {method}",
                    primary=name == "basic-auth, cache 60 s" and method == "GET",
                    size="medians",
                    n=None,
                    total_s=0.0,
                    value=d_us,
                    unit="µs",
                )
            )
        per_request = {v: cpu_s[v] / (2 * len(lat[v][0])) for v in (name, "no auth")}
        out.append(
            _result(
                bench="P8.overhead",
                name=f"{name} − no auth, server CPU per request",
                variant=f"{name}, server CPU",
                primary=False,
                size="GET and POST",
                n=None,
                total_s=0.0,
                value=(per_request[name] - per_request["no auth"]) * 1e6,
                unit="µs",
            )
        )
    return out


ALL = ("P1", "P2", "P3", "P4", "P5", "P7", "P8")


def run(quick: bool, only: set[str], tmpdir: str | None, keep: bool) -> tuple[list[H.Result], dict[str, Any]]:
    sizes = SIZES["quick" if quick else "full"]
    results: list[H.Result] = []
    errors: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="tallymark-bench-mlflow-", dir=tmpdir))
    meta: dict[str, Any] = {"quick": quick, "sizes": sizes, "env": H.env_info(root)}
    prev_cwd, prev_tmp = os.getcwd(), os.environ.get("TMPDIR")
    # Whatever MLflow (client or server) drops in the cwd (mlruns/, mlartifacts/) or in temp
    # dirs stays inside `root` and goes away with it.
    (root / "tmp").mkdir()
    os.environ["TMPDIR"] = tempfile.tempdir = str(root / "tmp")
    os.chdir(root)
    try:

        def step(name: str, fn: Callable[[], list[H.Result]], wanted: bool | None = None) -> None:
            if not (name.split(".")[0] in only if wanted is None else wanted):
                return
            H.progress(f"{name} ...")
            try:
                with H.timer() as t:
                    results.extend(fn())
                meta.setdefault("step_s", {})[name] = round(t.seconds, 2)
            except Exception:
                errors.append(f"{name}: {traceback.format_exc()}")
                H.progress(f"{name} FAILED:\n{traceback.format_exc()}")

        step("P7", lambda: bench_p7(sizes["p7_repeat"]))
        with H.timer() as t:
            import mlflow

            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            warnings.filterwarnings("ignore")
            stores = Stores(root)
        meta["system_version"] = mlflow.__version__
        meta["setup_s"] = round(t.seconds, 2)
        step("P1", lambda: bench_p1(stores, sizes["p1_sync"], sizes["p1_async"], sizes["p1_async_buffered"]))
        step("P2.embedded", lambda: bench_p2_embedded(stores, sizes["p2_steps"]))
        step("P3", lambda: bench_p3(stores, sizes["p3_runs"], sizes["p3_steps"]))
        step("P4", lambda: bench_p4(stores, sizes["p4_runs"], sizes["p4_repeat"]))
        p2s = sizes["p2_server_steps"] if "P2" in only else None
        if "P5" in only or p2s:
            default_server = bool(sizes["p5_default_server"])
            step("P2.server+P5", lambda: bench_server(stores, p2s, "P5" in only, default_server), wanted=True)
        step("P8", lambda: bench_p8(stores, sizes["p8_plain"], sizes["p8_auth"]))
    finally:
        os.chdir(prev_cwd)
        tempfile.tempdir = None
        if prev_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = prev_tmp
        if keep:
            H.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    meta["errors"] = errors
    meta["loadavg_end"] = H.loadavg()
    return results, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--tmpdir", default=None, help="where the temporary stores go (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    unknown = only - set(ALL)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    t0 = time.perf_counter()
    results, meta = run(args.quick, only, args.tmpdir, args.keep)
    meta["wall_s"] = round(time.perf_counter() - t0, 2)
    H.write_results(args.out, results, SYSTEM, **meta)
    H.progress(f"MLflow side done in {meta['wall_s']:.0f} s; {len(results)} results -> {args.out}")
    if meta["errors"]:
        H.progress(f"{len(meta['errors'])} benchmark(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
