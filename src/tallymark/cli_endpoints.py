"""CLI commands for endpoints: ``tallymark deploy``, ``tallymark endpoints list|show|delete`` and
``tallymark models trust`` (docs/serving.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from tallymark.cli import HomeOpt, UrlOpt, _fail, _row, _transport, app, console
from tallymark.cli_registry import _call, models_app
from tallymark.termsafe import markup

endpoints_app = typer.Typer(help="Deployed model versions: list, show, delete.", no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")


def _when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _liveness(e: dict[str, Any]) -> str:
    """Whether the endpoint's process runs: checked only on the machine it runs on."""
    from tallymark.serving import process

    pid = e.get("pid")
    if not pid or e["status"] == "Deleted":
        return ""
    if e.get("config", {}).get("machine") != process.machine():
        return f"{pid} (on {e.get('config', {}).get('machine') or '?'})"
    return f"{pid} running" if process.alive(pid) else f"{pid} NOT RUNNING"


@app.command("deploy")
def deploy(
    workspace: str,
    model: str,
    version: Annotated[
        str, typer.Argument(help="A version, or @production / @staging (the newest with it).")
    ],
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: a free one).")] = None,
    name: Annotated[str | None, typer.Option(help="Endpoint name (default MODEL-VERSION).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve a registered model version from a process on this machine (it keeps running)."""
    from tallymark.sdk.endpoint import EndpointError
    from tallymark.sdk.endpoint import deploy as sdk_deploy

    t = _transport(url, home)
    with console.status(f"starting an endpoint for {markup(model)} {markup(version)} …"):
        try:
            ep = sdk_deploy(t, workspace, model, version, name=name, port=port, host=host)
        except EndpointError as exc:
            _fail(exc.message)
    info = ep.describe()
    m = ep.model
    console.print(
        f"[green]InService[/] {markup(ep.name)}: {markup(m.name)} {markup(m.version)} at {markup(ep.url)} "
        f"(pid {info.get('pid')})"
    )
    console.print(
        f"  curl -s {markup(ep.url)}/invocations -H 'Content-Type: application/json' "
        '-d \'{"dataframe_split": {"columns": [...], "data": [[...]]}}\''
    )


@endpoints_app.command("list")
def endpoints_list(
    workspace: str,
    all_: Annotated[bool, typer.Option("--all", help="Include deleted endpoints.")] = False,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """List a workspace's endpoints: status, model, address, process."""
    rows = _call(_transport(url, home), "list_endpoints", workspace=workspace, include_deleted=all_)
    t = Table(title=f"endpoints in {markup(workspace)}")
    for c in ("name", "status", "model", "url", "pid", "created", "by"):
        t.add_column(c)
    for e in rows:
        m = e["model"]
        _row(
            t,
            e["name"],
            e["status"],
            f"{m['name']}:{m['version']}",
            e["url"] or (e["failureReason"] or "")[:60],
            _liveness(e),
            _when(e["createdAt"]),
            e["createdBy"],
        )
    console.print(t)


@endpoints_app.command("show")
def endpoints_show(workspace: str, name: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """Show one endpoint: model version, address, process, failure reason."""
    e = _call(_transport(url, home), "get_endpoint", workspace=workspace, name=name)
    m = e["model"]
    console.rule(f"[bold]{markup(e['name'])}[/] {markup(e['status'])}")
    lines = [
        ("model", f"{m['workspace']}/{m['name']}:{m['version']} ({m['status']})"),
        ("url", e["url"] or ""),
        ("process", _liveness(e)),
        ("created", f"{_when(e['createdAt'])} by {e['createdBy']}"),
        ("updated", _when(e["updatedAt"])),
        ("model file", f"{e['config'].get('modelFile', '')} sha256 {e['config'].get('sha256', '')}"),
    ]
    if m.get("trustedBy"):
        lines.append(("trusted by", m["trustedBy"]))
    if e["failureReason"]:
        lines.append(("failure", e["failureReason"]))
    for k, v in lines:
        console.print(f"{k:>12}  {markup(v, multiline=True)}")


@endpoints_app.command("delete")
def endpoints_delete(workspace: str, name: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """Delete an endpoint: its process stops (here at once; elsewhere within seconds)."""
    from tallymark.serving import process

    e = _call(_transport(url, home), "delete_endpoint", workspace=workspace, name=name)
    here = e.get("config", {}).get("machine") in (None, process.machine())
    with console.status(f"stopping {markup(name)} …"):
        stopped = here and process.stop(e.get("pid"), name)
    tail = "process stopped" if stopped else "its process stops when it notices"
    console.print(f"[green]Deleted[/] {markup(name)}: {tail}")


@models_app.command("trust")
def models_trust(
    workspace: str,
    model: str,
    version: str,
    comment: Annotated[str, typer.Option(help="Why this file may be unpickled (recorded in the audit log).")],
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Allow a version stored as a pickle to be served (workspace admins; audited).

    Loading a pickle runs code from the file: trust only a file whose origin you know."""
    if not comment.strip():
        _fail("--comment must say why this version may be unpickled")
    out = _call(
        _transport(url, home),
        "trust_model",
        workspace=workspace,
        name=model,
        version=version,
        body={"comment": comment},
    )
    console.print(
        f"[yellow]trusted[/] {markup(model)} {markup(version)} by {markup(out['trustedBy'])}: "
        "endpoints may now "
        "unpickle its model file"
    )
