"""The ``tallymark`` command line: thin shells over the service layer and the SDK."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tallymark.extras import MissingExtra, require_extra
from tallymark.termsafe import markup

app = typer.Typer(
    help="tallymark: self-hosted, audit-ready ML experiment management.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
experiments_app = typer.Typer(help="List, show and compare experiments.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(db_app, name="db")
# Stored text is printed through termsafe.markup (escape sequences, control characters, Rich markup);
# emoji codes are off so a stored ":warning:" prints as typed.
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Embedded home (default $TALLYMARK_HOME or ~/.tallymark).", show_default=False
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", help="Server URL (default $TALLYMARK_URL; none = the embedded home).", show_default=False
    ),
]


def _fail(message: str, code: int = 1) -> None:
    # Messages quote names the server or the store gave back: never let them drive the terminal.
    err.print(f"[bold red]error:[/] {markup(message, multiline=True)}")
    raise typer.Exit(code)


def _row(table: Table, *cells: Any, **kwargs: Any) -> None:
    """Add a row of stored text: each cell made terminal-safe and markup-free."""
    table.add_row(*(markup(c) for c in cells), **kwargs)


def _db_shown(url: str) -> str:
    from tallymark.sdk.autolog.redact import redact_text

    return redact_text(url)  # postgresql://user:password@host/db must not land in a terminal log


def _transport(url: str | None, home: Path | None) -> Any:
    from tallymark.sdk.transport import HttpTransport, LocalTransport
    from tallymark.settings import ClientSettings

    client = ClientSettings.from_env(url=url or None, home=home)
    if client.url:
        return HttpTransport(client.url, settings=client)
    return LocalTransport(settings=client)


def _settings(
    home: Path | None,
    db: str | None = None,
    blobs: str | None = None,
    public_url: str | None = None,
    s3_endpoint_url: str | None = None,
) -> Any:
    from tallymark.settings import Settings

    return Settings.from_env(
        home=home, db_url=db, blobs=blobs, public_url=public_url, s3_endpoint_url=s3_endpoint_url
    )


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5118,
    db: Annotated[str | None, typer.Option(help="Database URL: sqlite:///PATH or postgresql://…")] = None,
    blobs: Annotated[str | None, typer.Option(help="Blob store: a folder or s3://bucket/prefix.")] = None,
    s3_endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for s3:// blobs.")
    ] = None,
    home: HomeOpt = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Run without authentication (loopback only); default: API keys required."
        ),
    ] = False,
    public_url: Annotated[str | None, typer.Option(help="Base URL users reach this server at.")] = None,
) -> None:
    """Serve the web UI, the REST API (/api/v1, OpenAPI at /docs) and the comet_ml adapter."""
    require_extra("server", "tallymark server")
    from tallymark.server.run import is_loopback, serve

    if no_auth and not is_loopback(host):
        _fail(f"--no-auth refuses to listen on {host}: bind 127.0.0.1, ::1 or localhost")
    settings = _settings(home, db, blobs, public_url or f"http://{host}:{port}", s3_endpoint_url)
    if not no_auth:
        import dataclasses

        # With authentication every request proves who it is, so any Host may reach the server; the
        # DNS-rebinding defence (loopback Host only) is for --no-auth (docs/security.md).
        settings = dataclasses.replace(settings, auth=True, loopback_only=False)
    from tallymark.service.store import open_store

    try:
        store = open_store(settings)  # migrate once here, not in every worker
        try:
            from tallymark.service.bootstrap import has_admin

            waiting = not no_auth and not has_admin(store)
        finally:
            store.close()
    except Exception as exc:
        _fail(f"cannot open the store {_db_shown(settings.database_url)}: {exc}")
    mode = "no authentication, loopback only" if no_auth else "API keys required"
    err.print(
        f"tallymark server on [bold]http://{markup(host)}:{port}[/] (API /api/v1, docs /docs), "
        f"store {markup(_db_shown(settings.database_url))}, {mode}"
    )
    if waiting:
        err.print(
            "[yellow]no users yet: every request answers 401 until you run "
            "`tallymark admin init` on this store (it prints the first admin's API key once)[/]"
        )
    try:
        serve(settings, host, port, workers)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc}")


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to bind (loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5118,
    home: HomeOpt = None,
) -> None:
    """Serve the web UI (and the REST API) over the embedded home, on this machine only."""
    require_extra("server", "tallymark ui")
    from tallymark.server.run import is_loopback, serve
    from tallymark.service.store import open_store

    if not is_loopback(host):
        _fail(f"tallymark ui serves your home without login: bind 127.0.0.1, ::1 or localhost, not {host}")
    settings = _settings(home, public_url=f"http://{host}:{port}")
    try:
        open_store(settings).close()
    except Exception as exc:
        _fail(f"cannot open the store {_db_shown(settings.database_url)}: {exc}")
    err.print(
        f"tallymark UI on [bold]http://{markup(host)}:{port}/[/] (home {markup(settings.home_path)}); "
        "Ctrl-C stops it"
    )
    try:
        serve(settings, host, port, 1)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc}")


@db_app.command("upgrade")
def db_upgrade(
    db: Annotated[str | None, typer.Option(help="Database URL (default: the embedded home's).")] = None,
    home: HomeOpt = None,
) -> None:
    """Apply schema migrations (Alembic) up to this version's head."""
    from tallymark.store import migrate
    from tallymark.store.db import throwaway_engine

    settings = _settings(home, db)
    if settings.database_url.startswith("sqlite"):
        settings.home_path.mkdir(parents=True, exist_ok=True)
    engine = throwaway_engine(settings.database_url)
    try:
        before, after = migrate.upgrade(engine)
    except migrate.SchemaError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    if before == after:
        console.print(f"schema already at {after}")
    else:
        console.print(f"schema upgraded {before or '(empty)'} → {after}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _ms(ts: int | None) -> str:
    if ts is None:
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts / 1000).strftime("%Y-%m-%d %H:%M:%S")


@experiments_app.command("list")
def experiments_list(
    workspace: Annotated[str, typer.Argument(help="Workspace.")],
    project: Annotated[str | None, typer.Argument(help="Project (default: all in the workspace).")] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help='Filter, e.g. "metrics.auc > 0.9".')
    ] = None,
    sort: Annotated[str, typer.Option(help="Sort field; prefix - for descending.")] = "-created_at",
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Metric column(s).")] = None,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """List experiments, optionally filtered by the query language."""
    from tallymark.sdk.transport import TallymarkError

    t = _transport(url, home)
    try:
        res = t.read(
            "query",
            workspace=workspace,
            project=project,
            q=query,
            sort=sort,
            page=1,
            per_page=min(limit, 1000),
        )
    except TallymarkError as exc:
        _fail(exc.message)
    rows = res["experiments"]
    # Keys are shown whole (they are what `show`/`compare` take); metric columns fill what is left.
    room = max(1, (console.width - 32 - 24 - 8 - 12 - 8) // 13)
    metric_cols = (
        metric
        or sorted({m for e in rows for m in e.get("metrics", {}) if not m.startswith("sys.")})[: min(6, room)]
    )
    table = Table(title=f"{markup(workspace)}/{markup(project or '*')} — {res['total']} experiment(s)")
    table.add_column("key", no_wrap=True, min_width=32)
    table.add_column("name", overflow="fold", max_width=24)
    table.add_column("status")
    table.add_column("created", no_wrap=True)
    for col in metric_cols:
        table.add_column(markup(col), overflow="fold", justify="right")
    for e in rows:
        _row(
            table,
            e["key"],
            e.get("name") or "",
            e["status"],
            _ms(e["created_at"])[5:16],
            *[_fmt(e.get("metrics", {}).get(m, "")) for m in metric_cols],
        )
    console.print(table)


@experiments_app.command("show")
def experiments_show(key: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """Show one experiment: parameters, metric summaries, tags, others."""
    from tallymark.sdk.api import APIExperiment
    from tallymark.sdk.transport import TallymarkError

    t = _transport(url, home)
    try:
        info = t.read("experiment", key=key)
        e = APIExperiment(t, info)
        params, metrics, others, tags = (
            e.get_parameters_summary(),
            e.get_metrics_summary(),
            e.get_others_summary(),
            e.get_tags(),
        )
    except TallymarkError as exc:
        _fail(exc.message)
    console.print(
        f"[bold]{markup(info.get('name') or key)}[/]  {markup(info['workspace'])}/{markup(info['project'])}  "
        f"status={markup(info['status'])}  user={markup(info['user'])}  created={_ms(info['created_at'])}"
    )
    console.print(f"key {markup(key)}   url {markup(info.get('url', ''))}")
    if tags:
        console.print("tags: " + ", ".join(markup(t) for t in tags))
    pt = Table(title="parameters")
    pt.add_column("name")
    pt.add_column("value")
    for p in params:
        _row(pt, p["name"], _fmt(p["valueCurrent"]))
    mt = Table(title="metrics")
    for c in ("name", "last", "min", "max", "last step", "count"):
        mt.add_column(c)
    for m in metrics:
        _row(
            mt,
            m["name"],
            _fmt(m["valueCurrent"]),
            _fmt(m["valueMin"]),
            _fmt(m["valueMax"]),
            str(m["stepCurrent"]),
            str(m["count"]),
        )
    console.print(pt, mt)
    if others:
        ot = Table(title="others")
        ot.add_column("name")
        ot.add_column("value")
        for o in others:
            _row(ot, o["name"], _fmt(o["valueCurrent"]))
        console.print(ot)


@experiments_app.command("compare")
def experiments_compare(
    keys: Annotated[list[str], typer.Argument(help="Two or more experiment keys.")],
    all_params: Annotated[bool, typer.Option("--all", help="Show equal parameters too.")] = False,
    system: Annotated[bool, typer.Option("--system", help="Include sys.* metrics.")] = False,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Compare experiments: parameters that differ, and every metric side by side."""
    from tallymark.sdk.api import APIExperiment
    from tallymark.sdk.transport import TallymarkError

    if len(keys) < 2:
        _fail("give at least two experiment keys")
    t = _transport(url, home)
    try:
        exps = [APIExperiment(t, t.read("experiment", key=k)) for k in keys]
        params = [{p["name"]: p["valueCurrent"] for p in e.get_parameters_summary()} for e in exps]
        metrics = [{m["name"]: m for m in e.get_metrics_summary()} for e in exps]
    except TallymarkError as exc:
        _fail(exc.message)
    console.print(render_compare(exps, params, metrics, all_params, system))


def render_compare(
    exps: list[Any],
    params: list[dict[str, Any]],
    metrics: list[dict[str, Any]],
    all_params: bool = False,
    system: bool = False,
) -> Any:
    from rich.console import Group

    heads = [f"{markup(e.name or e.key[:8])}\n{markup(e.key[:8])}" for e in exps]
    pt = Table(title="parameters" + ("" if all_params else " that differ"))
    pt.add_column("parameter")
    for h in heads:
        pt.add_column(h)
    missing = object()
    for name in sorted(set().union(*params)):
        vals = [p.get(name, missing) for p in params]
        differ = any(v != vals[0] for v in vals)
        if differ or all_params:
            style = "bold yellow" if differ else ""
            _row(pt, name, *[("—" if v is missing else _fmt(v)) for v in vals], style=style)
    mt = Table(title="metrics (last value; best in green)")
    mt.add_column("metric")
    for h in heads:
        mt.add_column(h)
    for name in sorted(set().union(*metrics)):
        if name.startswith("sys.") and not system:
            continue
        vals = [m.get(name, {}).get("valueCurrent") for m in metrics]
        nums = [v for v in vals if isinstance(v, (int, float)) and v == v]
        lower_better = any(w in name.lower() for w in ("loss", "error", "fp", "fn", "mse", "mae"))
        best = (min(nums) if lower_better else max(nums)) if nums else None
        cells = []
        for v in vals:
            s = markup("—" if v is None else _fmt(v))
            cells.append(f"[green]{s}[/]" if best is not None and v == best and len(nums) > 1 else s)
        mt.add_row(markup(name), *cells)
    return Group(pt, mt)


@app.command()
def upload(
    files: Annotated[list[Path], typer.Argument(help="Offline archives (.zip) or journal folders.")],
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Send offline experiments and the journals runs left while a server was down.

    Takes OfflineExperiment archives (KEY.zip), journal folders (the path the SDK names at end(),
    under ~/.tallymark/journal/) and comet_ml OfflineExperiment archives. Idempotent: nothing is
    stored twice. A journal folder's entries are deleted as the server acknowledges them, and the
    folder once it is empty; entries the server refuses stay in it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tallymark.sdk.journal import EntriesRefused, replay_archive
    from tallymark.sdk.transport import TallymarkError, Unavailable
    from tallymark.server.compat.comet.offline import is_comet_archive, replay_comet_archive

    t = _transport(url, home)
    failures: list[str] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        for f in files:
            if not f.exists():
                failures.append(f"{f}: no such file or folder")
                continue
            name = markup(f.name)
            task = progress.add_task(name, total=None)
            try:
                replay = replay_comet_archive if is_comet_archive(f) else replay_archive
                key = replay(f, t, lambda i, n, task=task: progress.update(task, completed=i, total=n))
                progress.update(task, description=f"{name} → {markup(key)}")
            except (TallymarkError, Unavailable, EntriesRefused, ValueError, OSError) as exc:
                progress.update(task, description=f"[red]{name}: failed")
                failures.append(f"{f}: {getattr(exc, 'message', None) or exc}")
    for line in failures:  # whole lines, not cut to the width of a progress bar
        err.print(f"[red]{markup(line)}[/]")
    if failures:
        raise typer.Exit(1)


@app.command()
def demo(
    rows: Annotated[
        int | None, typer.Option(help="Rows of synthetic data (default: the full 284,807).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="A real creditcard.csv of the same schema.")] = None,
    workspace: Annotated[str, typer.Option(help="Workspace to log into.")] = "demo",
    project: Annotated[str, typer.Option(help="Project to log into.")] = "fraud-detection",
    backend: Annotated[
        str,
        typer.Option(help="Where the jobs run: local, or dask (a local 2-worker cluster the demo starts)."),
    ] = "local",
    keep_endpoint: Annotated[
        bool, typer.Option("--keep-endpoint", help="Leave the endpoint serving at the end (prints its URL).")
    ] = False,
) -> None:
    """Run the reference workflow as jobs: preprocess, train two XGBoost models, deploy, score, approve."""
    from tallymark.demo.workflow import BACKENDS, run_demo

    if data is not None and not data.is_file():
        _fail(f"--data {data}: no such file")
    if backend not in BACKENDS:
        _fail(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    try:
        run_demo(
            rows=rows,
            data=str(data) if data else None,
            workspace=workspace,
            project=project,
            console=console,
            backend=backend,
            keep_endpoint=keep_endpoint,
        )
    except (ValueError, RuntimeError) as exc:  # bad input, or a step that failed (DemoError, JobFailed)
        _fail(str(exc))


@experiments_app.command("delete")
def experiments_delete(
    key: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False, home: HomeOpt = None
) -> None:
    """Delete an experiment and what it logged (blobs stay until `tallymark gc`)."""
    from tallymark.service.errors import ServiceError
    from tallymark.service.gc import delete_experiment
    from tallymark.service.store import open_store

    if not yes and not typer.confirm(f"delete experiment {key} and everything it logged?"):
        raise typer.Exit(1)
    from tallymark.sdk.autolog.env import current_user
    from tallymark.service.caller import local_admin

    store = open_store(_settings(home))
    try:
        delete_experiment(store, local_admin(current_user()), key)
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        store.close()
    console.print(f"deleted {markup(key)}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except MissingExtra as exc:  # an optional part without its extra: say what to install, no traceback
        err.print(f"[bold red]error:[/] {markup(str(exc))}")
        sys.exit(1)


# The artifacts/models/lineage/gc, admin and audit commands live in their own modules; importing
# registers them.
from tallymark import cli_admin as _cli_admin  # noqa: E402, F401
from tallymark import cli_audit as _cli_audit  # noqa: E402, F401
from tallymark import cli_endpoints as _cli_endpoints  # noqa: E402, F401 - deploy, endpoints, models trust
from tallymark import cli_jobs as _cli_jobs  # noqa: E402, F401 - tallymark jobs (docs/jobs.md)
from tallymark import cli_registry as _cli_registry  # noqa: E402, F401

if __name__ == "__main__":
    main()
