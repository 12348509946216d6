"""CLI commands for artifacts, lineage, the model registry and garbage collection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from tallymark.cli import HomeOpt, UrlOpt, _fail, _row, _transport, app, console, err
from tallymark.termsafe import markup

artifacts_app = typer.Typer(help="Versioned datasets and other artifacts.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: versions, statuses, four-eyes approvals.", no_args_is_help=True
)
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(models_app, name="models")


def _call(t: Any, op: str, **kw: Any) -> Any:
    from tallymark.sdk.transport import TallymarkError, Unavailable

    try:
        return t.call(op, **kw)
    except (TallymarkError, Unavailable) as exc:
        _fail(getattr(exc, "message", str(exc)))


def _when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@artifacts_app.command("list")
def artifacts_list(workspace: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """List a workspace's artifacts."""
    rows = _call(_transport(url, home), "list_artifacts", workspace=workspace)
    t = Table(title=f"artifacts in {markup(workspace)}")
    for c in ("name", "type", "versions", "last version created", "created by"):
        t.add_column(c)
    for a in rows:
        _row(t, a["name"], a["artifactType"], a["versions"], _when(a["lastCreatedAt"]), a["createdBy"])
    console.print(t)


@artifacts_app.command("show")
def artifacts_show(
    workspace: str,
    name: str,
    version: Annotated[str | None, typer.Argument(help="Version or alias (default: all).")] = None,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show an artifact's versions (aliases, metadata, files with sha256, consumers)."""
    t = _transport(url, home)
    if version is None:
        versions = _call(t, "list_artifact_versions", workspace=workspace, name=name)
    else:
        versions = [_call(t, "artifact_version", workspace=workspace, name=name, version_or_alias=version)]
    for v in versions:
        aliases = " ".join("@" + markup(a) for a in v["aliases"])
        console.rule(f"[bold]{markup(v['name'])} {markup(v['version'])}[/] {aliases}")
        console.print(
            f"type {markup(v['artifactType'])}  created {_when(v['createdAt'])} by {markup(v['createdBy'])}  "
            f"from experiment {markup(v['sourceExperimentKey'] or '—')}  size {_size(v['size'])}"
        )
        if v.get("versionTags"):
            console.print("tags " + ", ".join(markup(t) for t in v["versionTags"]))
        if v["metadata"]:
            console.print(f"metadata {markup(v['metadata'])}")
        ft = Table(show_header=True)
        for c in ("logical path", "sha256 / uri", "size"):
            ft.add_column(c, overflow="fold")
        for f in v["files"]:
            _row(ft, f["logicalPath"], f["uri"] or f["sha256"], _size(f["size"]))
        console.print(ft)
        for c in v.get("consumers", []):
            console.print(f"  {markup(c['relation'])} by {markup(c['label'])}")


@artifacts_app.command("download")
def artifacts_download(
    workspace: str,
    name: str,
    path: Path,
    version: Annotated[str | None, typer.Option(help="Version or alias (default latest).")] = None,
    overwrite: bool = False,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Download an artifact version's files, verifying every sha256."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from tallymark.sdk.artifact import HashMismatch, LoggedArtifact

    t = _transport(url, home)
    info = _call(t, "artifact_version", workspace=workspace, name=name, version_or_alias=version)
    art = LoggedArtifact(t, info)
    total = sum(f["size"] or 0 for f in art.assets if not f["remote"])
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err
    ) as progress:
        task = progress.add_task(f"{markup(name)} {markup(art.version)}", total=total)
        try:
            files = art.download(
                path, overwrite=overwrite, on_progress=lambda _p, n: progress.advance(task, n)
            )
        except (HashMismatch, FileExistsError, ValueError) as exc:
            _fail(str(exc))
    console.print(f"{len(files)} file(s) verified into {markup(path)}")
    for f in art.assets:
        if f["remote"]:
            console.print(f"remote (not downloaded): {markup(f['logicalPath'])} → {markup(f['uri'])}")


@app.command()
def lineage(
    node: Annotated[
        str, typer.Argument(help="experiment:KEY, artifact:WS/NAME:VERSION|ALIAS or model:WS/NAME:VERSION")
    ],
    direction: Annotated[str, typer.Option(help="upstream, downstream or both.")] = "both",
    depth: Annotated[int, typer.Option(help="How many edges to follow.")] = 10,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Print the lineage of a node as upstream/downstream trees, with file hashes."""
    g = _call(_transport(url, home), "lineage", node=node, direction=direction, depth=depth)
    console.print(render_lineage(g, direction))


def render_lineage(g: dict[str, Any], direction: str) -> Any:
    from rich.console import Group

    nodes = {n["ref"]: n for n in g["nodes"]}

    def label(ref: str, relation: str | None) -> str:
        n = nodes[ref]
        text = f"[bold]{markup(n['label'])}[/]"
        if relation:
            text = f"[dim]{markup(relation)}[/] {text}"
        return text

    def files(branch: Tree, ref: str) -> None:
        for f in nodes[ref].get("files", []) if nodes[ref]["kind"] == "artifact_version" else []:
            what = f"sha256 {f['sha256']}" if f["sha256"] else f"remote {f['uri']}"
            branch.add(f"[dim]{markup(f['logicalPath'])}  {markup(what)}[/]")

    trees = []
    for d in ("upstream", "downstream"):
        if direction not in (d, "both"):
            continue
        root = Tree(f"{d}: {label(g['root'], None)}")
        files(root, g["root"])

        def grow(tree: Tree, ref: str, seen: set[str], d: str = d) -> None:
            for e in g["edges"]:
                nxt = (
                    e["src"]
                    if d == "upstream" and e["dst"] == ref
                    else (e["dst"] if d == "downstream" and e["src"] == ref else None)
                )
                if nxt is None or nxt in seen:
                    continue
                child = tree.add(label(nxt, e["relation"]))
                files(child, nxt)
                grow(child, nxt, seen | {nxt})

        grow(root, g["root"], {g["root"]})
        trees.append(root)
    return Group(*trees)


@models_app.command("list")
def models_list(workspace: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """List registered models."""
    rows = _call(_transport(url, home), "list_models", workspace=workspace)
    t = Table(title=f"models in {markup(workspace)}")
    for c in ("name", "versions", "latest", "in production", "pending requests"):
        t.add_column(c)
    for m in rows:
        _row(t, m["name"], m["versions"], m["latest"] or "", ", ".join(m["production"]), m["pendingRequests"])
    console.print(t)


@models_app.command("show")
def models_show(workspace: str, name: str, url: UrlOpt = None, home: HomeOpt = None) -> None:
    """Show a model's versions, statuses, pending requests and every transition."""
    m = _call(_transport(url, home), "get_model", workspace=workspace, name=name)
    t = Table(title=f"{markup(workspace)}/{markup(name)}")
    for c in ("version", "status", "tags", "experiment", "created", "description"):
        t.add_column(c)
    for v in m["versions"]:
        _row(
            t,
            v["version"],
            v["status"],
            ", ".join(v["tags"]),
            v["experimentKey"] or "",
            _when(v["createdAt"]),
            v.get("description") or "",
        )
    console.print(t)
    if m["pendingRequests"]:
        rt = Table(title="pending requests")
        for c in ("id", "version", "to", "requested by", "comment"):
            rt.add_column(c)
        for r in m["pendingRequests"]:
            _row(rt, r["id"], r["version"], r["toStatus"], r["requestedBy"], r["comment"] or "")
        console.print(rt)
    ht = Table(title="history")
    for c in ("version", "from", "to", "by", "when", "comment"):
        ht.add_column(c)
    for v in m["versions"]:
        for h in v["history"]:
            _row(ht, v["version"], h["from"] or "", h["to"], h["actor"], _when(h["at"]), h["comment"] or "")
    console.print(ht)


@models_app.command("request")
def models_request(
    workspace: str,
    name: str,
    version: str,
    status: Annotated[str, typer.Argument(help="development, staging, production or archived")],
    comment: Annotated[str | None, typer.Option("--comment", "-c")] = None,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Request a status change (production needs another person's approval)."""
    r = _call(
        _transport(url, home),
        "request_status",
        workspace=workspace,
        name=name,
        version=version,
        body={"status": status, "comment": comment},
    )
    if r["state"] == "pending":
        console.print(
            f"request {markup(r['id'])}: {markup(name)} {markup(version)} → {markup(status)} is pending; "
            f"another person approves it with `tallymark models approve {markup(r['id'])}`"
        )
    else:
        console.print(f"{markup(name)} {markup(version)} is now {markup(status)}")


def _decide(request_id: int, approve: bool, comment: str | None, url: str | None, home: Path | None) -> None:
    r = _call(
        _transport(url, home), "decide", request_id=request_id, approve=approve, body={"comment": comment}
    )
    console.print(
        f"request {markup(r['id'])} ({markup(r['model'])} {markup(r['version'])} → {markup(r['toStatus'])}) "
        f"{markup(r['state'])} by {markup(r['decidedBy'])}"
    )


@models_app.command("approve")
def models_approve(
    request_id: int,
    comment: Annotated[str | None, typer.Option("--comment", "-c")] = None,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Approve a pending request (not your own)."""
    _decide(request_id, True, comment, url, home)


@models_app.command("reject")
def models_reject(
    request_id: int,
    comment: Annotated[str | None, typer.Option("--comment", "-c")] = None,
    url: UrlOpt = None,
    home: HomeOpt = None,
) -> None:
    """Reject a pending request (not your own)."""
    _decide(request_id, False, comment, url, home)


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would go.")] = False,
    grace: Annotated[
        float, typer.Option(help="Keep unreferenced blobs younger than this (seconds).")
    ] = 3600.0,
    home: HomeOpt = None,
    db: Annotated[str | None, typer.Option(help="Database URL (a server's store).")] = None,
    blobs: Annotated[str | None, typer.Option(help="Blob store of that server.")] = None,
) -> None:
    """Delete blobs no experiment, artifact version or model references any more."""
    from tallymark.cli import _settings
    from tallymark.sdk.autolog.env import current_user
    from tallymark.service.caller import local_admin
    from tallymark.service.gc import collect_garbage
    from tallymark.service.store import open_store

    store = open_store(_settings(home, db, blobs))
    try:
        res = collect_garbage(store, local_admin(current_user()), dry_run=dry_run, grace_seconds=grace)
    finally:
        store.close()
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {res['removed']} blob(s), {_size(res['bytes'])}; {res['kept']} referenced blob(s) kept"
    )
