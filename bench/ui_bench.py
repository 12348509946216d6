"""Web UI speed: the experiment table over 10 k experiments and the compare page over 20 experiments
with 100 k points per metric, measured against a real ``tallymark server`` and headless Chromium.

    .venv/bin/python bench/ui_bench.py [--data DIR] [--experiments 10000] [--runs 5] [--json out.json]

Targets (issue 4): the table answers in < 300 ms; the compare page draws its first chart in < 1 s.
The data is generated once through the service layer / the SDK into ``--data`` (default
``~/.cache/tallymark-ui-bench``) and reused by later runs (generating 10 k experiments takes a few
minutes). Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from harness import free_port, loadavg, progress, start_process, stop_process, wait_http

REPO = Path(__file__).resolve().parent.parent
WORKSPACE = "bench"
TABLE_PROJECT = "table"
COMPARE_PROJECT = "compare"
COMPARE_RUNS = 20
COMPARE_POINTS = 100_000
COMPARE_METRICS = ("validation_auc", "train_loss")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def _settings(home: Path) -> Any:
    from tallymark.settings import Settings

    return Settings(home=home)


def make_table(home: Path, n: int) -> None:
    """``n`` experiments with 22 parameters, 10 one-point metrics and a tag (the P4 shape)."""
    from tallymark.service import batch, experiments
    from tallymark.service.caller import local_admin
    from tallymark.service.store import open_store

    caller = local_admin("bench")

    store = open_store(_settings(home))
    rng = random.Random(1)
    started = time.perf_counter()
    try:
        for i in range(n):
            key = uuid.uuid4().hex
            experiments.create_experiment(
                store,
                caller,
                {
                    "key": key,
                    "workspace": WORKSPACE,
                    "project": TABLE_PROJECT,
                    "name": f"run-{i}",
                    "tags": [f"t{i % 5}"],
                },
            )
            batch.apply_batch(
                store,
                caller,
                key,
                {
                    "batch_id": "b1",
                    "params": {f"p{j}": rng.random() for j in range(22)},
                    "metrics": [{"name": f"m{j}", "steps": [0], "values": [rng.random()]} for j in range(10)],
                },
            )
            if i and i % 1000 == 0:
                progress(f"table: {i:,}/{n:,} experiments ({time.perf_counter() - started:.0f} s)")
    finally:
        store.close()


def make_compare(home: Path) -> list[str]:
    """20 experiments, each with 100 k points of two metrics, logged through the SDK."""
    os.environ["TALLYMARK_HOME"] = str(home)
    os.environ.pop("TALLYMARK_URL", None)
    from tallymark import Experiment

    keys = []
    for r in range(COMPARE_RUNS):
        exp = Experiment(
            project_name=COMPARE_PROJECT,
            workspace=WORKSPACE,
            name=f"sweep-{r:02d}",
            log_code=False,
            log_git=False,
            log_env=False,
            log_system_metrics=False,
            capture_stdout=False,
        )
        with exp:
            exp.log_parameters({"lr": 10 ** -(1 + r / 10), "seed": r})
            rng = random.Random(r)
            rate = 3.0 + r / 4
            for step in range(COMPARE_POINTS):
                t = step / COMPARE_POINTS
                exp.log_metric(
                    "validation_auc", 0.9 + 0.08 * (1 - 2.718 ** (-rate * t)) + rng.gauss(0, 0.003), step=step
                )
                exp.log_metric(
                    "train_loss", 0.7 * 2.718 ** (-rate * t) + 0.02 + abs(rng.gauss(0, 0.01)), step=step
                )
            keys.append(exp.get_key())
        done = f"{r + 1}/{COMPARE_RUNS}"
        progress(f"compare: {done} experiments x {len(COMPARE_METRICS)} x {COMPARE_POINTS:,} points")
    return keys


def ensure_data(data: Path, n: int) -> dict[str, Any]:
    marker = data / "ui-bench.json"
    spec = {"experiments": n, "compare_runs": COMPARE_RUNS, "compare_points": COMPARE_POINTS, "version": 1}
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == spec:
            return saved
    progress(f"generating benchmark data in {data} (once; reused by later runs)")
    home = data / "home"
    if home.exists():
        import shutil

        shutil.rmtree(home)
    make_table(home, n)
    keys = make_compare(home)
    saved = {"spec": spec, "compare_keys": keys}
    marker.write_text(json.dumps(saved))
    return saved


def _stats(xs: list[float]) -> dict[str, Any]:
    runs = [round(x) for x in xs]
    xs = sorted(xs)
    return {
        "runs": runs,
        "median": statistics.median(xs),
        "p90": xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))],
        "min": xs[0],
        "n": len(xs),
    }


def time_http(client: httpx.Client, url: str, runs: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        client.get(url).raise_for_status()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return _stats(out)


def browser_runs(base: str, compare_url: str, table_url: str, runs: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    first, all_drawn, table_dom, table_resp = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for i in range(runs + 1):  # the first run warms the server's page cache; not counted
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base)
                page = ctx.new_page()
                page.goto(compare_url, wait_until="commit")
                page.wait_for_function("() => window.__tmFirstChart !== undefined", timeout=30_000)
                page.wait_for_function(
                    "() => document.querySelectorAll("
                    f"'#metric-charts .chart[data-resolution=full]').length === {len(COMPARE_METRICS)}",
                    timeout=60_000,
                )
                t_first = page.evaluate("window.__tmFirstChart")
                t_all = page.evaluate("performance.now()")
                page.goto(table_url)
                nav = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return [n.responseEnd - n.requestStart, n.domContentLoadedEventEnd]; })()"
                )
                ctx.close()
                if i == 0:
                    continue
                first.append(t_first)
                all_drawn.append(t_all)
                table_resp.append(nav[0])
                table_dom.append(nav[1])
        finally:
            browser.close()
    return {
        "compare_first_chart": _stats(first),
        "compare_all_charts": _stats(all_drawn),
        "table_response": _stats(table_resp),
        "table_dom_ready": _stats(table_dom),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("~/.cache/tallymark-ui-bench").expanduser())
    ap.add_argument("--experiments", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5, help="browser runs (HTTP timings use 4x as many)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    data = args.data
    data.mkdir(parents=True, exist_ok=True)
    saved = ensure_data(data, args.experiments)
    home = data / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    cmd = [sys.executable, "-m", "tallymark", "server", "--no-auth", "--port", str(port), "--home", str(home)]
    proc = start_process(cmd, data / "server.log", env=env, cwd=REPO)
    results: dict[str, Any] = {"load_before": loadavg()}
    try:
        wait_http(base + "/api/v1/health", proc=proc)
        keys = saved["compare_keys"]
        table = f"/{WORKSPACE}/{TABLE_PROJECT}"
        compare = f"/{WORKSPACE}/{COMPARE_PROJECT}/compare?keys={','.join(keys)}"
        http_runs = max(10, args.runs * 4)
        progress("timing HTTP")
        with httpx.Client(base_url=base, timeout=60) as c:
            results["table_page"] = time_http(c, table, http_runs)
            results["table_page_deep"] = time_http(c, table + "?page=150", http_runs)
            results["table_filtered_sorted"] = time_http(
                c, table + "?q=params.p1+%3E+0.5+and+metrics.m1+%3E+0.2&sort=-metrics.m3", http_runs
            )
            results["table_api_json"] = time_http(
                c, f"/api/v1/experiments?workspace={WORKSPACE}&project={TABLE_PROJECT}", http_runs
            )
            results["metric_100k_to_1000"] = time_http(
                c, f"/api/v1/experiments/{keys[0]}/metric?name=validation_auc&points=1000", http_runs
            )
            results["compare_page_html"] = time_http(c, compare, http_runs)
        progress("timing Chromium")
        results.update(browser_runs(base, compare, table, args.runs))
    finally:
        stop_process(proc)
    results["load_after"] = loadavg()
    rows = [
        ("table page, 10k experiments (HTTP)", "table_page", 300),
        ("table page 151 of 200 (HTTP)", "table_page_deep", 300),
        ("table filtered + sorted by metric (HTTP)", "table_filtered_sorted", 300),
        ("table in Chromium: response", "table_response", 300),
        ("table in Chromium: DOM ready", "table_dom_ready", None),
        ("list API JSON, 50 rows (HTTP)", "table_api_json", None),
        ("one metric 100k -> 1000 points (HTTP)", "metric_100k_to_1000", None),
        ("compare page HTML, 20 experiments (HTTP)", "compare_page_html", None),
        ("compare 20 x 100k: first chart drawn", "compare_first_chart", 1000),
        ("compare 20 x 100k: all charts, full resolution", "compare_all_charts", None),
    ]
    size = f"compare {COMPARE_RUNS} x {COMPARE_POINTS:,} points per metric"
    print(f"\nweb UI on {args.experiments:,} experiments; {size}")
    print(f"load average before {results['load_before']}, after {results['load_after']} (2 cores)\n")
    print(f"{'measure':<44} {'median':>9} {'p90':>9} {'best':>9} {'target':>8}  ok")
    for label, key, target in rows:
        s = results[key]
        ok = "" if target is None else ("yes" if s["median"] < target else "NO")
        tgt = "" if target is None else f"{target} ms"
        print(f"{label:<44} {s['median']:>6.0f} ms {s['p90']:>6.0f} ms {s['min']:>6.0f} ms {tgt:>8}  {ok}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
