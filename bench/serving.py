"""Serving rows of `make bench`: a tallymark endpoint beside `mlflow models serve`, same model, same run.

    python bench/serving.py --out serving.json [--quick] [--skip-mlflow]

One XGBoost model is trained here (the demo's fraud data generator, 30 features), logged and
registered in a temporary tallymark home, and saved with ``mlflow.xgboost.save_model`` in the
MLflow venv (.bench-venv) from the same booster file. Then, for each side:

- S1.ready: from starting the server process (tallymark: ``Model.deploy(wait=False)``, which also
  records the endpoint; MLflow: ``mlflow models serve -m DIR --env-manager local``) until ``GET
  /ping`` answers 200, polled every 2 ms by the same loop (median of 3 starts);
- S2.p50 / S2.p99: one 5-row ``dataframe_split`` request (the MLflow scoring protocol, the same bytes
  to both) on one reused keep-alive connection, 2,000 requests after 200 of warm-up. The client is
  a minimal HTTP/1.1 client on a raw socket with TCP_NODELAY (``RawClient``), the same for both
  sides: httpx alone spends ~1 ms of client CPU per request on this machine, more than the
  endpoint's own answer, and would measure the client instead of the server;
- S3.predlog: what the prediction log adds to a request (p50 with − p50 without; the two tallymark
  endpoints answer alternating requests, so the machine's load weighs on both), and
  ``PredictionLog.record`` itself in process (p50 of a 5-row record);
- S4.job_first_line: a local ProcessingJob from ``run()`` until its first output line can be read
  back through ``job.logs()`` (tallymark only: MLflow has no jobs).

Every process started here is stopped (its own process group) before the script returns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

WS = "bench"
MODEL = "fraud-xgb"
ROWS = 5
WARMUP = 200
REQUESTS = 2000
STARTS = 3


# The rows this script adds to `make bench`'s table (bench/run.py merges them into harness's).
BENCHES = {
    "S1.ready": "endpoint start → first answered /ping",
    "S2.p50": "5-row request, p50 (one keep-alive connection)",
    "S2.p99": "5-row request, p99 (one keep-alive connection)",
    "S3.predlog": "what the prediction log adds to a request (p50)",
    "S3.record": "PredictionLog.record of a 5-row request (p50, in process)",
    "S4.job_first_line": "local job: run() → its first output line readable",
}
TARGETS = [
    H.Target("S1.ready", "<", 1.0, "s"),
    H.Target("S2.p50", "<", 0.5, "ms"),
    H.Target("S2.p99", "<", 2.0, "ms"),
    H.Target("S3.predlog", "<", 20, "µs"),
    H.Target("S3.record", "<", 20, "µs"),
    H.Target("S4.job_first_line", "<", 200, "ms"),
]


def _percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# -- the model ------------------------------------------------------------------------------------


def train(tmp: Path, quick: bool) -> tuple[Path, Any, list[str]]:
    """An XGBoost booster on the demo's fraud data (UBJ file), the test frame and feature names."""
    import xgboost as xgb

    from tallymark.demo import data

    frame = data.generate(rows=data.MIN_ROWS if quick else 60_000, seed=0)
    features = list(data.FEATURES)
    x, y = frame[features].to_numpy(), frame["Class"].to_numpy()
    d = xgb.DMatrix(x, label=y, feature_names=features)
    params = {
        "objective": "binary:logistic",
        "max_depth": 5,
        "eta": 0.1,
        "eval_metric": "aucpr",
        "nthread": 2,
    }
    booster = xgb.train(params, d, 20 if quick else 100)
    path = tmp / "model.ubj"
    booster.save_model(str(path))
    return path, frame[features], features


def register_tallymark(path: Path, features: list[str]) -> str:
    from tallymark import Experiment

    exp = Experiment(
        project_name="bench",
        workspace=WS,
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    )
    meta = {
        "framework": "xgboost",
        "format": "ubj",
        "model_file": path.name,
        "signature": {
            "inputs": [{"name": f, "type": "double"} for f in features],
            "outputs": [{"name": "score", "type": "double"}],
        },
    }
    exp.log_model(MODEL, str(path), metadata=meta)
    out = exp.register_model(MODEL)
    exp.end()
    return str(out["version"])


MLFLOW_SAVE = textwrap.dedent(
    """
    import sys, json
    import pandas as pd
    import xgboost as xgb
    import mlflow.xgboost
    from mlflow.models import infer_signature

    booster = xgb.Booster()
    booster.load_model(sys.argv[1])
    sample = pd.DataFrame(json.loads(sys.argv[3]), columns=booster.feature_names)
    sig = infer_signature(sample, booster.predict(xgb.DMatrix(sample)))
    mlflow.xgboost.save_model(booster, sys.argv[2], model_format="ubj", signature=sig)
    """
)


def save_mlflow(python: Path, path: Path, dest: Path, sample: list[list[float]]) -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    subprocess.run(
        [str(python), "-c", MLFLOW_SAVE, str(path), str(dest), json.dumps(sample)],
        check=True,
        env=env,
        timeout=300,
    )


# -- measuring -------------------------------------------------------------------------------------


def wait_ping(url: str, proc: Any = None, timeout: float = 120.0) -> float:
    """Poll GET url/ping every 2 ms; the perf_counter when it first answered 200."""
    import httpx

    deadline = time.perf_counter() + timeout
    with httpx.Client(timeout=1.0) as c:
        while time.perf_counter() < deadline:
            try:
                if c.get(url + "/ping").status_code == 200:
                    return time.perf_counter()
            except httpx.HTTPError:
                pass
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} before answering")
            time.sleep(0.002)
    raise RuntimeError(f"{url} did not answer /ping within {timeout} s")


class _Answer:
    __slots__ = ("status_code", "content")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"answered {self.status_code}: {self.text[:300]}")


class RawClient:
    """One keep-alive HTTP/1.1 connection on a raw socket (TCP_NODELAY): POST with a body, read the
    answer by Content-Length (or chunked). Enough for timing a server, nothing more."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._sock: Any = None
        self._buf = b""
        self._where: tuple[str, int] | None = None

    def _connect(self, host: str, port: int) -> None:
        import socket

        self.close()
        self._sock = socket.create_connection((host, port), timeout=self.timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._where, self._buf = (host, port), b""

    def post(self, url: str, content: bytes, headers: dict[str, str] | None = None) -> _Answer:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        if self._sock is None or self._where != (host, port):
            self._connect(host, port)
        head = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(content)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + content)
        return self._read()

    def _fill(self) -> None:
        data = self._sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buf += data

    def _read(self) -> _Answer:
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self._buf:
                    self._fill()
                size_line, self._buf = self._buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self._buf) < size + 2:
                    self._fill()
                body, self._buf = body + self._buf[:size], self._buf[size + 2 :]
                if size == 0:
                    return _Answer(status, body)
        length = int(fields.get("content-length", "0"))
        while len(self._buf) < length:
            self._fill()
        body, self._buf = self._buf[:length], self._buf[length:]
        return _Answer(status, body)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def latencies(url: str, body: bytes, n: int, warmup: int = WARMUP, client: Any = None) -> list[float]:
    """Seconds per request of ``n`` POST /invocations on one keep-alive connection."""
    own = client is None
    c = client or RawClient(timeout=30.0)
    headers = {"Content-Type": "application/json"}
    try:
        for _ in range(warmup):
            r = c.post(url + "/invocations", content=body, headers=headers)
            r.raise_for_status()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post(url + "/invocations", content=body, headers=headers)
            out.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:300]}")
        return out
    finally:
        if own:
            c.close()


def record_cost(features: list[str], quick: bool, tmp: Path) -> list[float]:
    """Seconds per PredictionLog.record of a 5-row request, in process (the writer thread running)."""
    import numpy as np

    from tallymark.serving.predlog import PredictionLog

    log = PredictionLog("bench", WS, tmp / "record-spool", {}, features, ship=False)
    x = np.random.default_rng(0).random((ROWS, len(features)))
    y = np.random.default_rng(1).random(ROWS)
    out = []
    n = 2_000 if quick else 20_000
    try:
        for i in range(n):
            t0 = time.perf_counter_ns()
            log.record(f"r{i}", i, 300, x, y)
            out.append((time.perf_counter_ns() - t0) / 1e9)
            if i % 50 == 49:
                time.sleep(0.001)  # a request rate, not a tight loop: the writer gets its turn
    finally:
        log.close()
    return out


# -- the two sides ---------------------------------------------------------------------------------


class Endpoints:
    """tallymark endpoints deployed here, deleted (and their processes stopped) at the end."""

    def __init__(self) -> None:
        self.deployed: list[Any] = []

    def deploy(self, model: Any, version: str, name: str, log: bool) -> tuple[str, float]:
        port = H.free_port()
        prev = os.environ.get("TALLYMARK_PREDICTION_SPOOL_BYTES")
        if not log:
            os.environ["TALLYMARK_PREDICTION_SPOOL_BYTES"] = "0"  # the endpoint process inherits it
        try:
            t0 = time.perf_counter()
            ep = model.deploy(version, name=name, port=port, wait=False)
            self.deployed.append(ep)
            url = f"http://127.0.0.1:{port}"
            ready = wait_ping(url) - t0
        finally:
            if prev is None:
                os.environ.pop("TALLYMARK_PREDICTION_SPOOL_BYTES", None)
            else:
                os.environ["TALLYMARK_PREDICTION_SPOOL_BYTES"] = prev
        return url, ready

    def close(self) -> None:
        for ep in self.deployed:
            with contextlib.suppress(Exception):
                pid = ep.describe().get("pid")
                ep.delete()
                if pid:
                    _wait_gone(int(pid))
        self.deployed.clear()


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def mlflow_start(python: Path, model_dir: Path, tmp: Path) -> tuple[Any, str, float]:
    port = H.free_port()
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    env.pop("PYTHONPATH", None)
    # as an activated venv: the scoring server is started as `uvicorn` from PATH
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(python), "-m", "mlflow", "models", "serve", "-m", str(model_dir)]
    cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.perf_counter()
    proc = H.start_process(cmd, tmp / f"mlflow-serve-{port}.log", env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ping(url, proc) - t0
    except Exception:
        H.stop_process(proc)
        raise
    return proc, url, ready


JOB_SCRIPT = "import time\nprint('first line', time.time(), flush=True)\ntime.sleep(0.5)\nprint('done')\n"


def job_first_line(tmp: Path, runs: int) -> tuple[list[float], list[float]]:
    """(run() → first line readable through job.logs(); run() → the script printing it), seconds."""
    from tallymark.jobs import ProcessingJob

    script = tmp / "hello.py"
    script.write_text(JOB_SCRIPT)
    seen, printed = [], []
    for _ in range(runs):
        job = ProcessingJob(script, backend="local", workspace=WS)
        t_wall = time.time()
        t0 = time.perf_counter()
        job.run(wait=False)
        deadline = t0 + 60
        text = ""
        while "first line" not in text and time.perf_counter() < deadline:
            text = job.logs()
            if "first line" not in text:
                time.sleep(0.002)
        seen.append(time.perf_counter() - t0)
        stamp = float(text.split("first line", 1)[1].split()[0])
        printed.append(stamp - t_wall)
        job.wait(timeout=60)
    return seen, printed


# -- the rows --------------------------------------------------------------------------------------


def _r(bench: str, system: str, name: str, value: float, unit: str, total: float, n: int, **kw: Any) -> dict:
    return H.Result(bench, system, name, kw.pop("size", ""), value, unit, total, n, **kw).to_dict()


def run(quick: bool, skip_mlflow: bool) -> list[dict[str, Any]]:
    from tallymark import API

    requests = 300 if quick else REQUESTS
    starts = 1 if quick else STARTS
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tm-bench-serving-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["TALLYMARK_HOME"] = str(tmp / "home")
        os.environ.pop("TALLYMARK_URL", None)
        H.progress("serving: training the XGBoost model")
        path, frame, features = train(tmp, quick)
        version = register_tallymark(path, features)
        sample = frame.iloc[:ROWS]
        body = json.dumps(
            {"dataframe_split": {"columns": features, "data": sample.to_numpy().tolist()}}
        ).encode()
        size = f"{ROWS} rows × {len(features)} features, {requests} requests"
        model = API().get_model(WS, MODEL)
        eps = Endpoints()
        try:
            H.progress("serving: tallymark endpoint starts")
            ready = []
            for i in range(starts):
                url, t = eps.deploy(model, version, f"bench-start-{i}", log=True)
                ready.append(t)
                eps.close()
            results.append(
                _r(
                    "S1.ready",
                    "tallymark",
                    "endpoint start → /ping",
                    statistics.median(ready),
                    "s",
                    sum(ready),
                    starts,
                    size=f"median of {starts}",
                    extra={"all_s": ready},
                )
            )
            H.progress("serving: tallymark latency, with and without the prediction log")
            url_log, _ = eps.deploy(model, version, "bench-log", log=True)
            url_nolog, _ = eps.deploy(model, version, "bench-nolog", log=False)
            import httpx

            with RawClient() as c1, RawClient() as c2:
                latencies(url_log, body, 0, WARMUP, c1)
                latencies(url_nolog, body, 0, WARMUP, c2)
                with_log = latencies(url_log, body, requests, 0, c1)  # S2: back to back, log on
                # S3: the two endpoints in alternation, request by request, so the load of the
                # machine (other processes come and go) weighs on both halves alike.
                paired: tuple[list[float], list[float]] = ([], [])
                pids = [int(ep.describe()["pid"]) for ep in eps.deployed[-2:]]
                sent = ROWS * (WARMUP + requests)
                _logged_rows("bench-log", sent)  # S2's rows shipped: the CPU below is S3's own
                cpu0 = [H.tree_cpu_seconds(p) for p in pids]
                for _ in range(requests):
                    paired[0].extend(latencies(url_log, body, 1, 0, c1))
                    paired[1].extend(latencies(url_nolog, body, 1, 0, c2))
                sent += ROWS * requests
                in_store = _logged_rows("bench-log", sent)  # and S3's, before the CPU is read
                cpu = [(H.tree_cpu_seconds(p) - c) / requests * 1e6 for p, c in zip(pids, cpu0, strict=True)]
            check = httpx.post(
                url_log + "/invocations", content=body, headers={"Content-Type": "application/json"}
            )
            ours_pred = check.json()["predictions"]
            for name, xs in (("p50", 0.5), ("p99", 0.99)):
                results.append(
                    _r(
                        f"S2.{name}",
                        "tallymark",
                        f"5-row request, {name}",
                        _percentile(with_log, xs) * 1e3,
                        "ms",
                        sum(with_log),
                        len(with_log),
                        size=size,
                        notes="prediction log on",
                    )
                )
            added = (statistics.median(paired[0]) - statistics.median(paired[1])) * 1e6
            rec = record_cost(features, quick, tmp)
            results.append(
                _r(
                    "S3.predlog",
                    "tallymark",
                    "what the log adds: p50 with − without, alternating requests",
                    added,
                    "µs",
                    sum(paired[0]) + sum(paired[1]),
                    len(paired[0]),
                    size=size,
                    extra={
                        "p50_with_ms": statistics.median(paired[0]) * 1e3,
                        "p50_without_ms": statistics.median(paired[1]) * 1e3,
                        "p99_with_ms": _percentile(paired[0], 0.99) * 1e3,
                        "p99_without_ms": _percentile(paired[1], 0.99) * 1e3,
                        "cpu_us_per_request_with": cpu[0],
                        "cpu_us_per_request_without": cpu[1],
                        "cpu_us_added": cpu[0] - cpu[1],
                        "rows_sent": sent,
                        "rows_in_store": in_store,
                        "record_p50_us": _percentile(rec, 0.5) * 1e6,
                        "record_p99_us": _percentile(rec, 0.99) * 1e6,
                    },
                )
            )
            results.append(
                _r(
                    "S3.record",
                    "tallymark",
                    "PredictionLog.record, 5 rows, p50",
                    _percentile(rec, 0.5) * 1e6,
                    "µs",
                    sum(rec),
                    len(rec),
                    size=f"{len(rec)} records in process; MLflow logs no predictions",
                    extra={"p99_us": _percentile(rec, 0.99) * 1e6},
                )
            )
        finally:
            eps.close()

        H.progress("serving: job start → first line")
        seen, printed = job_first_line(tmp, 2 if quick else 5)
        results.append(
            _r(
                "S4.job_first_line",
                "tallymark",
                "ProcessingJob.run → first line in job.logs()",
                statistics.median(seen) * 1e3,
                "ms",
                sum(seen),
                len(seen),
                size=f"median of {len(seen)} jobs; no MLflow peer: MLflow runs no jobs",
                notes="MLflow has no jobs: no peer",
                extra={"all_ms": [s * 1e3 for s in seen], "script_printed_ms": [p * 1e3 for p in printed]},
            )
        )

        if not skip_mlflow:
            results += mlflow_side(tmp, path, sample, body, size, requests, starts, ours_pred)
    return results


def _logged_rows(endpoint: str, want: int, timeout: float = 20.0) -> int:
    """Rows of the endpoint's prediction log in the store, once ``want`` arrived (or the timeout)."""
    from tallymark.sdk.predictions import read_predictions

    deadline = time.monotonic() + timeout
    while True:
        n = read_predictions(WS, endpoint, with_labels=False).num_rows
        if n >= want or time.monotonic() > deadline:
            return int(n)
        time.sleep(0.2)


def mlflow_side(
    tmp: Path, path: Path, sample: Any, body: bytes, size: str, requests: int, starts: int, ours: list[float]
) -> list[dict[str, Any]]:
    subprocess.run(["bash", str(H.BENCH_DIR / "setup_mlflow_venv.sh")], check=True, env=dict(os.environ))
    python = H.bench_venv() / "bin" / "python"
    model_dir = tmp / "mlflow-model"
    H.progress("serving: saving the model with mlflow.xgboost.save_model")
    save_mlflow(python, path, model_dir, sample.to_numpy().tolist())
    out: list[dict[str, Any]] = []
    ready = []
    H.progress("serving: mlflow models serve starts")
    for _ in range(starts):
        proc, url, t = mlflow_start(python, model_dir, tmp)
        ready.append(t)
        H.stop_process(proc)
    out.append(
        _r(
            "S1.ready",
            "mlflow",
            "mlflow models serve → /ping",
            statistics.median(ready),
            "s",
            sum(ready),
            starts,
            size=f"median of {starts}",
            extra={"all_s": ready},
        )
    )
    H.progress("serving: mlflow latency")
    proc, url, _ = mlflow_start(python, model_dir, tmp)
    try:
        xs = latencies(url, body, requests)
        import httpx

        theirs = httpx.post(url + "/invocations", content=body, headers={"Content-Type": "application/json"})
        preds = theirs.json()["predictions"]
    finally:
        H.stop_process(proc)
    same = max(abs(float(a) - float(b)) for a, b in zip(ours, preds, strict=True))
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        out.append(
            _r(
                f"S2.{name}",
                "mlflow",
                f"5-row request, {name}",
                _percentile(xs, q) * 1e3,
                "ms",
                sum(xs),
                len(xs),
                size=size,
                notes=f"same predictions as tallymark (max |Δ| {same:.1e})",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-mlflow", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = run(a.quick, a.skip_mlflow)
    H.write_results(
        a.out, results, "tallymark+mlflow", wall_s=round(time.perf_counter() - t0, 1), env=H.env_info()
    )
    H.progress(f"serving bench done in {time.perf_counter() - t0:.0f} s -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
