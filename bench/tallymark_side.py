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
from typing import Any

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
    from tallymark.service.caller import local_admin

    caller = local_admin("bench")

    store = LocalTransport().store
    keys = []
    rng = np.random.default_rng(0)
    for i in range(runs):
        key = f"{i + 1:032x}"
        experiments.create_experiment(store, caller, {"key": key, "workspace": "p3", "project": "histories"})

        def packed(a: np.ndarray) -> dict[str, str]:
            return {"dtype": a.dtype.str, "b64": base64.b64encode(a.tobytes()).decode()}

        batch.apply_batch(
            store,
            caller,
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
    from tallymark.service.caller import local_admin

    caller = local_admin("bench")

    _fresh_home()
    store = LocalTransport().store
    rng = np.random.default_rng(1)
    lrs = [0.05, 0.1, 0.15, 0.2, 0.3]
    for i in range(runs):
        key = f"{i + 1:032x}"
        experiments.create_experiment(store, caller, {"key": key, "workspace": "p4", "project": "query"})
        batch.apply_batch(
            store,
            caller,
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
    reads.query_experiments(store, caller, "p4", "query", q)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        res = reads.query_experiments(store, caller, "p4", "query", q, per_page=100)
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


# --------------------------------------------------------------------------- P8


def _p8_server(auth: bool) -> tuple[Any, str, dict[str, str], str, Path]:
    """A server (auth on or --no-auth) on a fresh home with one experiment:
    (proc, base URL, request headers, experiment key, the server's home)."""
    import subprocess

    import httpx

    home = _fresh_home()
    srv = home / "srv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    admin_key = ""
    if auth:
        cp = subprocess.run(
            [sys.executable, "-m", "tallymark", "admin", "init", "--user", "root", "--home", str(srv)],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )  # fmt: skip
        admin_key = cp.stdout.strip().splitlines()[-1]
    port = harness.free_port()
    cmd = [sys.executable, "-m", "tallymark", "server", *(() if auth else ("--no-auth",))]
    cmd += ["--port", str(port), "--home", str(srv)]
    proc = harness.start_process(cmd, log_path=home / "server.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        harness.wait_http(f"{base}/api/v1/health", timeout=60, proc=proc)
        headers: dict[str, str] = {}
        with httpx.Client(base_url=base, timeout=30) as c:
            if auth:  # a member's key, as a data scientist's notebook would send it
                root = {"Authorization": f"Bearer {admin_key}"}
                for method, path, body in (
                    ("POST", "/api/v1/admin/users", {"name": "alice"}),
                    ("POST", "/api/v1/admin/workspaces", {"name": "p8"}),
                    ("PUT", "/api/v1/admin/workspaces/p8/members/alice", {"role": "member"}),
                ):
                    c.request(method, path, json=body, headers=root).raise_for_status()
                made = c.post("/api/v1/admin/keys", json={"user": "alice"}, headers=root)
                made.raise_for_status()
                headers = {"Authorization": f"Bearer {made.json()['key']}"}
            key = f"{0x8:032x}"
            body = {"key": key, "workspace": "p8", "project": "auth"}
            c.post("/api/v1/experiments", json=body, headers=headers).raise_for_status()
    except BaseException:
        harness.stop_process(proc)
        raise
    return proc, base, headers, key, srv


def _p8_block(
    client: Any, key: str, headers: dict[str, str], n: int, start: int, tag: str
) -> tuple[list[float], list[float]]:
    """``n`` GETs of the experiment and ``n`` small batches (2 params, 3 metrics); latencies in s."""
    gets, posts = [], []
    path = f"/api/v1/experiments/{key}"
    for i in range(start, start + n):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        gets.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"P8 GET answered {r.status_code}: {r.text[:200]}")
        body = {
            "batch_id": f"{tag}{i:08d}",
            "params": {f"p{i}_a": i, f"p{i}_b": "adam"},
            "metrics": [
                {"name": "loss", "steps": [i], "values": [1.0 / (i + 1)]},
                {"name": "acc", "steps": [i], "values": [0.5]},
                {"name": "lr", "steps": [i], "values": [0.001]},
            ],
        }
        t0 = time.perf_counter()
        r = client.post(f"{path}/batch", json=body, headers=headers)
        posts.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"P8 POST answered {r.status_code}: {r.text[:200]}")
    return gets, posts


def _cache_ttl() -> float:
    from tallymark.server.auth import CACHE_TTL_S

    return CACHE_TTL_S


def _auth_path_cost(
    home: Path, authorization: str, exp_key: str, n: int = 20_000
) -> tuple[float, float, float]:
    """µs per request of what authentication adds, measured in this process on the server's store:
    GET /api/v1/experiments/{key}'s permission dependency plus the route's caller, with auth on (the
    key resolved from its cache, the experiment's workspace from the lookup cache) and off (the
    local admin). Also the cost of a cache miss: :func:`tallymark.service.apikeys.authenticate`."""
    import asyncio
    import types
    from dataclasses import replace

    from starlette.requests import Request

    from tallymark.server import auth
    from tallymark.server.permissions import need
    from tallymark.service.apikeys import authenticate
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    store = open_store(Settings(home=home))
    dep = need("experiment.get").dependency
    headers = [(b"authorization", authorization.encode()), (b"host", b"127.0.0.1")]

    def fake_app(on: bool) -> Any:
        state = types.SimpleNamespace(settings=replace(store.settings, auth=on), store=store, user="bench")
        return types.SimpleNamespace(state=state)

    async def run(app: Any, count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            scope = {
                "type": "http",
                "method": "GET",
                "path": f"/api/v1/experiments/{exp_key}",
                "headers": headers,
                "query_string": b"",
                "app": app,
                "path_params": {"key": exp_key},
            }
            request = Request(scope)
            await dep(request)
            auth.require_caller(request)  # the route's CallerDep
        return (time.perf_counter() - t0) / count

    try:
        on_app, off_app = fake_app(True), fake_app(False)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(run(on_app, 2_000))
            loop.run_until_complete(run(off_app, 2_000))
            on = min(loop.run_until_complete(run(on_app, n)) for _ in range(5))
            off = min(loop.run_until_complete(run(off_app, n)) for _ in range(5))
        finally:
            loop.close()
        raw = authorization.split()[-1]
        t0 = time.perf_counter()
        for _ in range(200):
            if authenticate(store, raw) is None:
                raise RuntimeError("P8: the bench key does not authenticate")
        miss = (time.perf_counter() - t0) / 200
    finally:
        store.close()
    return on * 1e6, off * 1e6, miss * 1e6


def _app_cpu_per_request(
    home: Path, authorization: str, exp_key: str, blocks: int = 16, n: int = 300
) -> tuple[float, float, float]:
    """CPU µs per GET /api/v1/experiments/{key} through the whole ASGI app (middleware, routing,
    permission, route, JSON), called in this process without sockets, auth on (the Bearer key) and
    off, in alternating pairs of blocks: (median on, median off, median of the pairs' differences).
    CPU time of this process only, so other load on the machine moves it less than a latency."""
    import asyncio
    import statistics
    from dataclasses import replace

    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    path = f"/api/v1/experiments/{exp_key}"
    auth_header = [(b"authorization", authorization.encode())]

    async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:5118"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 5118),
        }
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    async def main() -> tuple[float, float, float]:
        settings = Settings(home=home)
        apps = {on: create_app(replace(settings, auth=on), warm_after=None) for on in (True, False)}
        queues: dict[bool, tuple[asyncio.Queue[Any], asyncio.Queue[Any]]] = {}
        tasks = []
        for on, app in apps.items():
            inbox: asyncio.Queue[Any] = asyncio.Queue()
            outbox: asyncio.Queue[Any] = asyncio.Queue()
            queues[on] = (inbox, outbox)
            await inbox.put({"type": "lifespan.startup"})
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
            tasks.append(asyncio.create_task(app(scope, inbox.get, outbox.put)))
            await outbox.get()
        headers = {True: auth_header, False: []}
        for on in (True, False):
            for _ in range(200):
                status = await call(apps[on], headers[on])
            if status != 200:
                raise RuntimeError(f"P8 in-process GET answered {status}")
        cpu: dict[bool, list[float]] = {True: [], False: []}
        for b in range(blocks):
            for on in (True, False) if b % 2 else (False, True):
                t0 = time.process_time()
                for _ in range(n):
                    await call(apps[on], headers[on])
                cpu[on].append((time.process_time() - t0) / n * 1e6)
        for on in (True, False):
            await queues[on][0].put({"type": "lifespan.shutdown"})
            await queues[on][1].get()
        await asyncio.gather(*tasks)
        diffs = [a - b for a, b in zip(cpu[True], cpu[False], strict=True)]
        return statistics.median(cpu[True]), statistics.median(cpu[False]), statistics.median(diffs)

    return asyncio.run(main())


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def p8_auth(n: int) -> list[Result]:
    """P8: the same small GET and POST against a --no-auth server and an auth-on server (Bearer key)."""
    import httpx

    servers = {"no auth": _p8_server(auth=False), "auth": _p8_server(auth=True)}
    lat: dict[str, dict[str, list[float]]] = {v: {"GET": [], "POST": []} for v in servers}
    try:
        clients = {v: httpx.Client(base_url=s[1], timeout=30) for v, s in servers.items()}
        for v, (_, _, headers, key, _) in servers.items():  # warm up: imports, caches, the connection
            _p8_block(clients[v], key, headers, 200, 0, "w")
        # The servers take turns request by request (in alternating order), so a change of the
        # machine's load hits both alike; each server's own CPU time is read over the whole run.
        cpu0 = {v: harness.tree_cpu_seconds(s[0].pid) for v, s in servers.items()}
        order = list(servers)
        for i in range(n):
            for v in order if i % 2 else reversed(order):
                _, _, headers, key, _ = servers[v]
                g, p = _p8_block(clients[v], key, headers, 1, 1000 + i, "m")
                lat[v]["GET"] += g
                lat[v]["POST"] += p
        cpu = {v: harness.tree_cpu_seconds(s[0].pid) - cpu0[v] for v, s in servers.items()}
        for c in clients.values():
            c.close()
    finally:
        for proc, *_ in servers.values():
            harness.stop_process(proc)
    _, _, headers, key, home = servers["auth"]
    path_on, path_off, miss = _auth_path_cost(home, headers["Authorization"], key)
    app_on, app_off, app_diff = _app_cpu_per_request(home, headers["Authorization"], key)
    out: list[Result] = [
        Result(
            "P8.auth_path",
            SYSTEM,
            "in-process: CPU per GET through the whole app, auth on − auth off",
            "16 pairs of blocks × 300 requests",
            app_diff,
            "µs",
            0.0,
            variant="whole app (CPU)",
            notes=f"auth on {app_on:.0f} µs, off {app_off:.0f} µs CPU per request (medians of the blocks; "
            "the figure is the median of the pairs' differences; no sockets, no uvicorn)",
            extra={"on_us": app_on, "off_us": app_off},
        ),
        Result(
            "P8.auth_path",
            SYSTEM,
            "in-process: the route's permission dependency + caller, auth on − auth off (key cached)",
            "20,000 requests × 5",
            path_on - path_off,
            "µs",
            0.0,
            variant="auth path alone",
            primary=False,
            notes=f"auth on {path_on:.1f} µs, off {path_off:.1f} µs per request (a new Request each); "
            f"a cache miss (key looked up in the store, once per {_cache_ttl()} s per key) {miss:.0f} µs",
            extra={"on_us": path_on, "off_us": path_off, "cache_miss_us": miss},
        ),
    ]
    for v in servers:
        count = len(lat[v]["GET"]) + len(lat[v]["POST"])
        for method, what in (("GET", "GET one experiment"), ("POST", "POST a batch: 2 params, 3 metrics")):
            xs = lat[v][method]
            med = harness.median(xs)
            out.append(
                Result(
                    "P8." + method.lower(),
                    SYSTEM,
                    what,
                    f"{len(xs):,} requests",
                    med * 1e6,
                    "µs",
                    sum(xs),
                    len(xs),
                    variant="auth, Bearer key" if v == "auth" else v,
                    primary=v == "auth",
                    notes=f"p95 {_pct(xs, 0.95) * 1e6:,.0f} µs; keep-alive httpx client, one server "
                    f"process; server CPU {cpu[v] / count * 1e6:,.0f} µs/request (GET and POST)",
                    extra={
                        "p95_us": _pct(xs, 0.95) * 1e6,
                        "server_cpu_us_per_request": cpu[v] / count * 1e6,
                    },
                )
            )
    for method in ("GET", "POST"):
        d = (harness.median(lat["auth"][method]) - harness.median(lat["no auth"][method])) * 1e6
        out.append(
            Result(
                "P8.overhead",
                SYSTEM,
                f"auth − no-auth, median {method}",
                f"{len(lat['auth'][method]):,} requests each",
                d,
                "µs",
                0.0,
                variant=method,
                primary=method == "GET",
            )
        )
    d_cpu = (cpu["auth"] - cpu["no auth"]) / (len(lat["auth"]["GET"]) * 2) * 1e6
    out.append(
        Result(
            "P8.overhead",
            SYSTEM,
            "auth − no-auth, server CPU per request",
            "GET and POST",
            d_cpu,
            "µs",
            0.0,
            variant="server CPU",
            primary=False,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    ap.add_argument("--only", default="", help="comma-separated subset, e.g. P2,P8 (default: all)")
    args = ap.parse_args(argv)
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    q = args.quick
    results: list[Result] = []
    steps = [
        ("P1", lambda: p1_log_metric(20_000 if q else 1_000_000)),
        ("P2", lambda: p2_ingest(2_000 if q else 100_000, 10)),
        ("P3", lambda: p3_histories(10 if q else 100, 1_000 if q else 10_000)),
        ("P4", lambda: p4_query(500 if q else 10_000)),
        ("P5", p5_server),
        ("P7", p7_import),
        ("P8", lambda: p8_auth(300 if q else 1_000)),
    ]
    for name, fn in steps:
        if only and name not in only:
            continue
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
