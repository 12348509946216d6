"""Shared helpers for the tallymark-vs-MLflow benchmark suite.

Imported by both sides of the suite:

* ``bench/tallymark_side.py`` runs in the project's ``.venv``;
* ``bench/mlflow_side.py`` runs in ``.bench-venv`` (MLflow only, no ``rich`` there).

So this module imports nothing but the standard library at import time; ``rich`` is imported
lazily by :func:`print_table` only.

Result format
-------------
One :class:`Result` per measured figure (a benchmark may yield several: variants such as
``sync`` / ``async``).  ``bench`` is the table row it belongs to (``P1``, ``P2.embedded``, ...,
see :data:`BENCHES`), ``value`` + ``unit`` is the headline figure that is compared with the
target, ``total_s`` the wall time of the measured part, ``size`` says what size was used.
A side writes ``{"format": FORMAT, "system": ..., "results": [...]}`` with
:func:`write_results`; :func:`load_results` reads that (or a bare list) back as dicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "tallymark-bench/1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# Table rows, in display order: bench id -> what it measures.
BENCHES: dict[str, str] = {
    "P1": "log_metric on the training thread (per call)",
    "P1.drain": "buffered metrics: flush until durable",
    "P2.embedded": "ingest until durable, embedded store (10 metrics x 100k steps)",
    "P2.server": "ingest until durable, via the server",
    "P3": "read 100 run histories x 10k steps (total)",
    "P4": "query 10k runs, param + metric filter",
    "P5.first_request": "server start: first answered request",
    "P5.idle_rss": "server idle RSS (all processes)",
    "P6": "(reserved)",
    "P7": "import time of the client package",
    "P8.get": "small request with auth: GET one experiment (median)",
    "P8.post": "small request with auth: POST a batch of 2 params + 3 metrics (median)",
    "P8.overhead": "what auth adds per request: auth − no auth (medians, end to end)",
    "P8.auth_path": "what auth adds per request, server side (in process, key cached)",
}


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One measured figure of one system.

    ``value``/``unit`` is the headline figure (e.g. ``3.1`` ``"µs/call"``, ``850000``
    ``"points/s"``, ``120`` ``"ms"``); ``total_s`` is the wall time of the measured part and
    ``n`` the number of units it covered (calls, points, runs...).  ``extrapolated`` is set
    when ``value`` was scaled up from a smaller size than the benchmark's nominal one.
    """

    bench: str
    system: str
    name: str
    size: str
    value: float
    unit: str
    total_s: float
    n: int | None = None
    variant: str = ""
    primary: bool = True
    extrapolated: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def write_results(
    path: str | os.PathLike[str],
    results: Iterable[Result | dict[str, Any]],
    system: str,
    **meta: Any,
) -> dict[str, Any]:
    """Write one side's results as JSON (``meta`` goes to the top level, e.g. version)."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "system": system,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **meta,
        "results": [r.to_dict() if isinstance(r, Result) else dict(r) for r in results],
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(p)
    return doc


def load_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a file written by :func:`write_results` (or a bare JSON list of results)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, list):
        return doc
    return list(doc.get("results", []))


# --------------------------------------------------------------------------- timing


class Timer:
    """``seconds`` is set when the ``with timer()`` block exits (and readable live via ``elapsed``)."""

    __slots__ = ("start", "seconds")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds = math.nan

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@contextlib.contextmanager
def timer() -> Iterator[Timer]:
    """``with timer() as t: ...`` then ``t.seconds`` (perf_counter wall time)."""
    t = Timer()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - t.start


def time_call(fn: Callable[[], Any], repeat: int = 1, warmup: int = 0) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    if not s:
        return math.nan
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def import_time(module: str, python: str = sys.executable, repeat: int = 3) -> list[float]:
    """Seconds to ``import module`` in a fresh interpreter, measured inside it, ``repeat`` times."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = []
    for _ in range(repeat):
        cp = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        out.append(float(cp.stdout.strip().splitlines()[-1]))
    return out


def fsync_latency_us(directory: str | os.PathLike[str], n: int = 50) -> float:
    """Median µs of write(1 byte)+fsync in ``directory``: says how slow "durable" is on this disk."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=".fsync-probe-")
    try:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x")
            os.fsync(fd)
            samples.append(time.perf_counter() - t0)
        return median(samples) * 1e6
    finally:
        os.close(fd)
        os.unlink(path)


def env_info(directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Machine facts worth keeping next to the numbers."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    info["loadavg"] = loadavg()
    if directory is not None:
        info["bench_dir"] = str(directory)
        with contextlib.suppress(OSError):
            info["fsync_us"] = round(fsync_latency_us(directory), 1)
    return info


def loadavg() -> list[float] | None:
    """1/5/15-minute load averages: a busy machine skews every figure."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def progress(msg: str) -> None:
    """Progress line on stderr (stdout stays free for machine-readable output)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- servers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_http(
    url: str,
    timeout: float = 120.0,
    interval: float = 0.02,
    proc: subprocess.Popen[Any] | None = None,
    t0: float | None = None,
) -> float:
    """Poll ``url`` until it answers 2xx; return seconds since ``t0`` (default: now).

    Raises ``RuntimeError`` if ``proc`` exits first and ``TimeoutError`` after ``timeout``.
    """
    start = time.perf_counter() if t0 is None else t0
    while True:
        if http_ok(url, timeout=max(interval * 50, 1.0)):
            return time.perf_counter() - start
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(interval)


def start_process(
    cmd: Sequence[str],
    log_path: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (process group), output to ``log_path``."""
    log = open(log_path, "ab")  # handed to the child; closed by stop_process
    proc = subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    proc._bench_log = log  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a process started by :func:`start_process` and everything in its process group.

    Only the group created for ``proc`` (its own pid) is signalled: SIGTERM, then SIGKILL.
    """
    pgid = proc.pid
    deadline = time.monotonic() + timeout
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # Workers of the group may outlive the leader: give them the rest of the time, then kill.
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    log = getattr(proc, "_bench_log", None)
    if log is not None:
        log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg(0); look for a live member.
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st is not None and st[4] == pgid and st[2] != "Z":
            return True
    return False


def _all_pids() -> list[int]:
    try:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat with the comm field collapsed (index 2 = state, 3 = ppid, 4 = pgrp)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, tail = raw.rpartition(")")
    pid_s, _, comm = head.partition(" (")
    parts = tail.split()
    return [pid_s, comm, *parts]


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc; Linux only)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st is None:
            continue
        with contextlib.suppress(ValueError):
            children.setdefault(int(st[3]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def tree_memory(root: int) -> dict[str, Any]:
    """Memory of ``root`` and its descendants: summed RSS and PSS (bytes), process count.

    Summed RSS counts pages shared between processes more than once; PSS splits them
    (None when /proc/PID/smaps_rollup is not readable).
    """
    pids = tree_pids(root)
    rss = sum(_status_kb(p, "VmRSS") for p in pids) * 1024
    pss_parts = [_pss_kb(p) for p in pids]
    pss = None if any(x is None for x in pss_parts) else sum(x or 0 for x in pss_parts) * 1024
    return {"rss_bytes": rss, "pss_bytes": pss, "processes": len(pids)}


def tree_cpu_seconds(root: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree_pids(root):
        st = _proc_stat(pid)
        if st is not None:
            with contextlib.suppress(ValueError, IndexError):
                total += int(st[13]) + int(st[14])  # utime + stime
    return total / ticks


def wait_idle(root: int, cpu_fraction: float = 0.05, window: float = 1.0, timeout: float = 90.0) -> float:
    """Wait until the process tree uses < ``cpu_fraction`` of one core over ``window`` s.

    Returns seconds waited (``timeout`` if it never settled).
    """
    t0 = time.perf_counter()
    last = tree_cpu_seconds(root)
    while time.perf_counter() - t0 < timeout:
        time.sleep(window)
        now = tree_cpu_seconds(root)
        if now - last < cpu_fraction * window:
            return time.perf_counter() - t0
        last = now
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Target:
    """tallymark's goal for one row: ``value <op> limit`` in ``unit``."""

    bench: str
    op: str  # "<", "<=", ">", ">="
    limit: float
    unit: str

    @property
    def lower_is_better(self) -> bool:
        return self.op in ("<", "<=")

    def label(self) -> str:
        op = {"<=": "≤", ">=": "≥"}.get(self.op, self.op)
        return f"{op} {fmt_num(self.limit)} {self.unit}"


TARGETS: list[Target] = [
    Target("P1", "<=", 2.0, "µs/call"),
    Target("P2.embedded", ">=", 1_000_000, "points/s"),
    Target("P2.server", ">=", 500_000, "points/s"),
    Target("P3", "<", 150, "ms"),
    Target("P4", "<", 50, "ms"),
    Target("P5.first_request", "<", 1.0, "s"),
    Target("P5.idle_rss", "<", 200, "MB"),
    Target("P7", "<", 0.2, "s"),
    Target("P8.auth_path", "<", 50, "µs"),
]

_TIME = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
_BYTES = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_COUNT = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def _thing(word: str) -> str:
    """``points`` and ``point`` name the same thing."""
    w = word.strip()
    return w[:-1] if len(w) > 1 and w.endswith("s") else w


def _parse_unit(unit: str) -> tuple[str, float, str] | None:
    """-> (kind, scale to base, thing); same kind and thing means convertible."""
    u = unit.strip()
    if u in _TIME:
        return ("time", _TIME[u], "")
    if u in _BYTES:
        return ("bytes", _BYTES[u], "")
    if "/" in u:
        num, den = (x.strip() for x in u.split("/", 1))
        if num in _TIME:
            return ("time", _TIME[num], _thing(den))
        if den == "s":
            prefix, _, what = num.partition(" ")
            if what and prefix in _COUNT:
                return ("rate", _COUNT[prefix], _thing(what))
            return ("rate", 1.0, _thing(num))
    return None


def convert(value: float, unit: str, to_unit: str) -> float | None:
    """``value`` from ``unit`` to ``to_unit``; None if they are not the same kind of quantity.

    Besides scaling (``s`` -> ``ms``, ``M points/s`` -> ``points/s``) it inverts a rate into
    a time per thing and back (``points/s`` <-> ``µs/point``).
    """
    a, b = _parse_unit(unit), _parse_unit(to_unit)
    if a is None or b is None:
        return value if unit == to_unit else None
    if {a[0], b[0]} == {"rate", "time"} and a[2] and a[2] == b[2]:
        base = value * a[1]
        return math.inf if base == 0 else 1.0 / base / b[1]
    if a[0] != b[0] or (a[2] != b[2] and a[2] and b[2]):
        return None
    return value * a[1] / b[1]


def verdict(value: float, unit: str, target: Target) -> tuple[bool | None, str]:
    """(meets?, text): ``meets``, ``misses by 35 %`` or ``n/a`` (unit mismatch / NaN)."""
    v = convert(value, unit, target.unit)
    if v is None or math.isnan(v):
        return None, "n/a"
    ok = {"<": v < target.limit, "<=": v <= target.limit, ">": v > target.limit, ">=": v >= target.limit}[
        target.op
    ]
    if ok:
        return True, "meets"
    if target.lower_is_better:
        miss = (v - target.limit) / target.limit * 100
    else:
        miss = (target.limit - v) / target.limit * 100
    return False, f"misses by {fmt_num(miss)} %"


def fmt_num(x: float | int | None) -> str:
    """Three significant digits (trailing zeros dropped), thousands separators, never 1e-05."""
    if x is None:
        return "—"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    ax = abs(x)
    if ax >= 100 or float(x).is_integer():
        return f"{round(x):,}"
    digits = 2 - int(math.floor(math.log10(ax)))
    return f"{x:,.{digits}f}".rstrip("0").rstrip(".")


def _as_results(results: Iterable[Result | dict[str, Any]]) -> list[Result]:
    return [r if isinstance(r, Result) else Result.from_dict(r) for r in results]


def _primary(rs: list[Result]) -> Result | None:
    for r in rs:
        if r.primary:
            return r
    return rs[0] if rs else None


def _cell(rs: list[Result], sep: str, unit: str | None) -> str:
    """Each result as ``variant: figure unit (size)``, in ``unit`` when it converts."""
    lines = []
    for r in rs:
        label = f"{r.variant}: " if r.variant and len(rs) > 1 else ""
        approx = "≈" if r.extrapolated else ""
        value, shown = r.value, r.unit
        if unit is not None and (v := convert(r.value, r.unit, unit)) is not None:
            value, shown = v, unit
        lines.append(f"{label}{approx}{fmt_num(value)} {shown} ({r.size})")
    return sep.join(lines) if lines else "—"


def _comparison(ours: Result | None, theirs: Result | None, target: Target | None) -> str:
    if ours is None or theirs is None:
        return "—"
    if (ours.extrapolated or theirs.extrapolated) and ours.n and theirs.n and ours.total_s and theirs.total_s:
        # Scaled figures are compared on what was measured: time per unit (e.g. per point).
        ratio = (theirs.total_s / theirs.n) / (ours.total_s / ours.n)
        return f"{fmt_num(ratio)}× faster" if ratio >= 1 else f"{fmt_num(1 / ratio)}× slower"
    other = convert(theirs.value, theirs.unit, ours.unit)
    if other is None or math.isnan(other) or ours.value <= 0 or other <= 0:
        return "—"  # (a difference of two medians can be ≤ 0: within the noise, no ratio)
    kind = (_parse_unit(ours.unit) or ("", 1.0, ""))[0]
    lower_better = target.lower_is_better if target is not None else kind in ("time", "bytes")
    ratio = other / ours.value if lower_better else ours.value / other
    better, worse = ("smaller", "larger") if kind == "bytes" else ("faster", "slower")
    if ratio >= 1:
        return f"{fmt_num(ratio)}× {better}"
    return f"{fmt_num(1 / ratio)}× {worse}"


def _bench_label(bench: str, sep: str) -> str:
    if bench not in BENCHES:
        return bench
    if sep == "\n":
        return f"{bench}\n{BENCHES[bench]}"
    return f"**{bench}** {BENCHES[bench]}"


def table_rows(
    results: Iterable[Result | dict[str, Any]], targets: Sequence[Target] = TARGETS, sep: str = "\n"
) -> list[dict[str, str]]:
    """The table as plain rows (keys: bench, benchmark, tallymark, mlflow, target, verdict, vs_mlflow)."""
    rs = _as_results(results)
    by_target = {t.bench: t for t in targets}
    ids = [b for b in BENCHES if b in by_target or any(r.bench == b for r in rs)]
    ids += sorted({r.bench for r in rs} - set(ids))
    rows = []
    for b in ids:
        ours = [r for r in rs if r.bench == b and r.system == "tallymark"]
        theirs = [r for r in rs if r.bench == b and r.system == "mlflow"]
        others = [r for r in rs if r.bench == b and r.system not in ("tallymark", "mlflow")]
        t = by_target.get(b)
        p = _primary(ours)
        verdict_text = "—"
        if t is not None and p is not None:
            verdict_text = verdict(p.value, p.unit, t)[1]
            if p.extrapolated and verdict_text != "n/a":
                verdict_text += " (extrapolated)"
        rows.append(
            {
                "bench": b,
                "benchmark": _bench_label(b, sep),
                "tallymark": _cell(ours, sep, t.unit if t else None),
                "mlflow": _cell(theirs + others, sep, t.unit if t else None),
                "target": t.label() if t is not None else "—",
                "verdict": verdict_text,
                "vs_mlflow": _comparison(p, _primary(theirs), t),
            }
        )
    return rows


_COLUMNS = [
    ("benchmark", "Benchmark"),
    ("tallymark", "tallymark (figure, size)"),
    ("mlflow", "MLflow (figure, size)"),
    ("target", "Target"),
    ("verdict", "Verdict"),
    ("vs_mlflow", "vs MLflow"),
]


def markdown_table(results: Iterable[Result | dict[str, Any]], targets: Sequence[Target] = TARGETS) -> str:
    rows = table_rows(results, targets, sep="<br>")
    out = [
        "| " + " | ".join(h for _, h in _COLUMNS) + " |",
        "|" + "|".join("---" for _ in _COLUMNS) + "|",
    ]
    for row in rows:
        out.append("| " + " | ".join(row[k].replace("|", "\\|") for k, _ in _COLUMNS) + " |")
    return "\n".join(out) + "\n"


def print_table(
    results: Iterable[Result | dict[str, Any]],
    targets: Sequence[Target] = TARGETS,
    markdown_path: str | os.PathLike[str] | None = None,
    title: str = "tallymark vs MLflow",
    console: Any = None,
) -> str:
    """Print the side-by-side rich table; also write its markdown to ``markdown_path``.

    ``results`` mixes both systems (Result objects or dicts from :func:`load_results`).
    Returns the markdown text.
    """
    from rich.console import Console
    from rich.table import Table

    results = _as_results(results)
    rows = table_rows(results, targets)
    table = Table(title=title, show_lines=True)
    for key, header in _COLUMNS:
        table.add_column(header, overflow="fold", no_wrap=key in ("target",))
    for row in rows:
        v = row["verdict"]
        style = "green" if v.startswith("meets") else "red" if v.startswith("misses") else ""
        cells = [row[k] for k, _ in _COLUMNS]
        cells[4] = f"[{style}]{v}[/{style}]" if style else v
        table.add_row(*cells)
    if console is None:
        console = Console()
        if not console.is_terminal:  # CI logs, pipes: don't squeeze the table into 80 columns
            console = Console(width=max(console.width, 180))
    console.print(table)
    md = markdown_table(results, targets)
    if markdown_path is not None:
        Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_path).write_text(md, encoding="utf-8")
    return md


# --------------------------------------------------------------------------- MLflow side


def bench_venv() -> Path:
    return Path(os.environ.get("BENCH_VENV", REPO_ROOT / ".bench-venv")).resolve()


def run_mlflow_side(
    quick: bool,
    out: str | os.PathLike[str] | None = None,
    timeout: float = 1800.0,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """Set up ``.bench-venv`` (idempotent) and run ``bench/mlflow_side.py`` in it.

    Progress goes to this process's stderr; returns the parsed result dicts (also kept in
    ``out`` when given, else in a temporary file that is removed).
    """
    env = dict(os.environ)
    env.setdefault("BENCH_VENV", str(bench_venv()))
    subprocess.run(["bash", str(BENCH_DIR / "setup_mlflow_venv.sh")], check=True, env=env, timeout=timeout)
    python = bench_venv() / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="tallymark-bench-") as tmp:
        path = Path(out) if out is not None else Path(tmp) / "mlflow.json"
        cmd = [str(python), str(BENCH_DIR / "mlflow_side.py"), "--out", str(path)]
        if quick:
            cmd.append("--quick")
        if only:
            cmd += ["--only", only]
        subprocess.run(cmd, check=True, timeout=timeout, cwd=tmp)
        return load_results(path)


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Print the tallymark-vs-MLflow table from result files.")
    ap.add_argument("files", nargs="+", help="JSON result files (any number, both systems)")
    ap.add_argument("--markdown", help="also write the table as markdown here")
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = []
    for f in args.files:
        results.extend(load_results(f))
    print_table(results, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
