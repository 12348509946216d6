"""CLI commands for jobs: ``tallymark jobs list|show|logs|stop`` (docs/jobs.md).

They read the store (the embedded home or ``--url``), so they see and stop jobs that any other
process submitted. ``--watch`` keeps a live Rich view until the jobs have ended; ``logs -f``
follows the output until the job ends. Stored text goes through :mod:`tallymark.termsafe`.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from tallymark.cli import HomeOpt, UrlOpt, _fail, _row, _transport, app, console
from tallymark.termsafe import clean, markup

jobs_app = typer.Typer(
    help="Processing and training jobs: list, show, follow logs, stop.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")

FINAL = ("Completed", "Failed", "Stopped", "TimedOut")
COLOURS = {
    "InProgress": "cyan",
    "Completed": "green",
    "Failed": "red",
    "Stopped": "yellow",
    "TimedOut": "magenta",
}
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Keep a live view until the jobs have ended.")]


def _call(t: Any, op: str, **kw: Any) -> Any:
    from tallymark.sdk.transport import TallymarkError, Unavailable

    try:
        return t.call(op, **kw)
    except (TallymarkError, Unavailable) as exc:
        _fail(getattr(exc, "message", str(exc)))


def _when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _took(j: dict[str, Any]) -> str:
    if j.get("started_at") is None:
        return ""
    end = j.get("ended_at") or int(time.time() * 1000)
    return f"{(end - j['started_at']) / 1000:.1f}s"


def _status(j: dict[str, Any]) -> str:
    s = markup(j["status"])
    shown = f"[{COLOURS.get(j['status'], 'white')}]{s}[/]"
    if j.get("secondary_status") and j["secondary_status"] != j["status"]:
        shown += f" ({markup(j['secondary_status'])})"
    if j.get("stop_requested_at") and j["status"] == "InProgress":
        shown += " stopping"
    return shown


def _list_table(workspace: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"jobs in {markup(workspace)}")
    t.add_column("name", no_wrap=True)
    for c in ("kind", "status", "backend", "created", "took", "exit", "attempt"):
        t.add_column(c)
    for j in rows:
        t.add_row(
            markup(j["name"]),
            markup(j["kind"]),
            _status(j),
            markup(j["backend"]),
            markup(_when(j["created_at"])),
            markup(_took(j)),
            markup("" if j["exit_code"] is None else j["exit_code"]),
            markup(f"{j['attempt']}/{j['max_attempts']}"),
        )
    return t


@jobs_app.command("list")
def jobs_list(
    workspace: str,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    watch: WatchOpt = False,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """List a workspace's jobs, newest first."""
    t = _transport(url, home)
    rows = _call(t, "list_jobs", workspace=workspace, status=status, limit=limit)
    if not watch:
        console.print(_list_table(workspace, rows))
        return
    with Live(_list_table(workspace, rows), console=console, refresh_per_second=4) as live:
        while any(j["status"] not in FINAL for j in rows):
            time.sleep(1.0)
            rows = _call(t, "list_jobs", workspace=workspace, status=status, limit=limit)
            live.update(_list_table(workspace, rows))


def _show_table(j: dict[str, Any]) -> Table:
    t = Table(title=f"{markup(j['kind'])} job {markup(j['name'])}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    spec = j.get("spec") or {}
    t.add_row("status", _status(j))
    _row(t, "workspace", j["workspace"])
    _row(t, "backend", j["backend"])
    _row(t, "script", spec.get("script") or f"built-in {spec.get('algorithm')}")
    _row(t, "created", f"{_when(j['created_at'])} by {j['created_by']}")
    _row(t, "started", _when(j["started_at"]))
    _row(t, "ended", _when(j["ended_at"]))
    _row(t, "took", _took(j))
    _row(t, "max_run", f"{spec.get('max_run')}s")
    _row(t, "attempt", f"{j['attempt']} of {j['max_attempts']}")
    if j["exit_code"] is not None:
        _row(t, "exit code", j["exit_code"])
    if j["failure_reason"]:
        t.add_row("failure", markup(j["failure_reason"], multiline=True))
    if j["model_data"]:
        _row(t, "model_data", j["model_data"])
    for k, v in (spec.get("hyperparameters") or {}).items():
        _row(t, f"hp {k}", v)
    for c in spec.get("inputs") or []:
        _row(t, f"input {c['name']}", c["uri"] + (f" → {c['destination']}" if c.get("destination") else ""))
    for o in spec.get("outputs") or []:
        _row(t, f"output {o['name']}", f"{o['source']} → {o['destination']}")
    for link in j.get("links") or []:
        _row(t, link["relation"], link["ref"])
    dropped = f", {j['log_dropped']:,} left out (limit)" if j["log_dropped"] else ""
    _row(t, "log", f"{j['log_bytes']:,} bytes{dropped}")
    for a in j.get("attempts") or []:
        _row(t, f"attempt {a['attempt']}", f"{a['status']} exit {a['exit_code']} on {a.get('host', '')}")
    return t


@jobs_app.command("show")
def jobs_show(
    workspace: str, name: str, watch: WatchOpt = False, url: UrlOpt = None, home: HomeOpt = None
) -> None:
    """Show a job: status, timings, exit code, failure reason, inputs, outputs, lineage."""
    t = _transport(url, home)
    j = _call(t, "get_job", workspace=workspace, name=name)
    if not watch or j["status"] in FINAL:
        console.print(_show_table(j))
        return
    with Live(_show_table(j), console=console, refresh_per_second=4) as live:
        while j["status"] not in FINAL:
            time.sleep(0.5)
            j = _call(t, "get_job", workspace=workspace, name=name)
            live.update(_show_table(j))


@jobs_app.command("logs")
def jobs_logs(
    workspace: str,
    name: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow the output until the job ends.")
    ] = False,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Print a job's output (as stored: its head and newest tail beyond the log limit)."""
    from tallymark.jobs.follow import follow_logs
    from tallymark.sdk.transport import TallymarkError, Unavailable

    t = _transport(url, home)
    _call(t, "get_job", workspace=workspace, name=name)  # a clear error for a job that is not there
    try:
        if follow:
            follow_logs(t, workspace, name, sys.stdout, clean=lambda s: clean(s, multiline=True))
        else:
            from tallymark.jobs.follow import read_logs

            sys.stdout.write(clean(read_logs(t, workspace, name), multiline=True))
    except (TallymarkError, Unavailable) as exc:
        _fail(getattr(exc, "message", str(exc)))
    sys.stdout.flush()


@jobs_app.command("stop")
def jobs_stop(
    workspace: str,
    name: str,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the job has ended.")] = True,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Stop a running job: SIGTERM to its process group, SIGKILL after the grace period."""
    t = _transport(url, home)
    j = _call(t, "stop_job", workspace=workspace, name=name)
    if j["status"] in FINAL:
        console.print(f"job {markup(name)} has ended already: {_status(j)}")
        return
    if not wait:
        console.print(f"asked job {markup(name)} to stop")
        return
    with console.status(f"stopping job {markup(name)}…"):
        while j["status"] not in FINAL:
            time.sleep(0.25)
            j = _call(t, "get_job", workspace=workspace, name=name)
    console.print(f"job {markup(name)}: {_status(j)}")
