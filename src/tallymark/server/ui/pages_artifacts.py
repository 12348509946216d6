"""``/{workspace}/artifacts`` (every artifact) and ``/{workspace}/artifacts/{name}?version=`` (its
versions, newest first, and one version in detail: aliases, metadata, files with sha256, the
experiment that produced it and the experiments that consumed it).

Pieces the model pages reuse live here too: :func:`files_table`, :func:`sha`, :func:`exp_link`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.server.ui import assets, fmt, urls, widgets
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import page
from tallymark.service import artifacts, ui_reads
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound
from tallymark.service.models import SEMVER_RE
from tallymark.service.store import Store

SHORT_SHA = 12


def artifacts_url(ws: str) -> str:
    return f"{urls.workspace(ws)}/artifacts"


def artifact_url(ws: str, name: str, version: str | None = None) -> str:
    return f"{artifacts_url(ws)}/{urls._q(name)}{urls._query({'version': version})}"


def registry_script() -> Markup:
    """``static/js/registry.js``: sha copying and, on model pages, the approve/reject buttons."""
    return el("script", {"type": "module", "src": urls.static("js/registry.js", assets.version())})


def sha(value: str | None) -> Markup | str:
    """A sha256, shortened; the full value on hover (``title``) and on click (copied)."""
    if not value:
        return ""
    return el("code", {"class": "sha", "title": value, "data-sha": value}, value[:SHORT_SHA] + "…")


def exp_link(key: str | None, places: dict[str, dict[str, Any]]) -> Markup | str:
    """A link to an experiment's page, labelled with its name (or its key when it has none)."""
    if not key:
        return ""
    where = places.get(key)
    if where is None:
        return el("code", None, key[:12])
    return el(
        "a",
        {"class": "exp-link", "href": urls.experiment(where["workspace"], where["project"], key)},
        where["name"] or key[:12],
    )


def aliases(values: Sequence[str]) -> Markup:
    return el("span", {"class": "aliases"}, [el("span", {"class": "alias"}, a) for a in values])


def files_table(files: Sequence[dict[str, Any]], table_id: str | None = None) -> Markup:
    """Logical path, sha256, size and, for references, the remote URI (shown as text, never a link)."""
    if not files:
        return widgets.empty("No files.")
    rows = [
        el(
            "tr",
            None,
            el("td", {"class": "value"}, f["logicalPath"]),
            el("td", None, sha(f.get("sha256"))),
            el("td", {"class": "num"}, fmt.size(f.get("size"))),
            el("td", {"class": "value uri"}, f.get("uri") or ""),
        )
        for f in files
    ]
    head = el("tr", None, [el("th", {"class": c}, h) for h, c in _FILE_HEADS])
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid compact files", "id": table_id},
            el("thead", None, head),
            el("tbody", None, rows),
        ),
    )


_FILE_HEADS = (("path", None), ("sha256", None), ("size", "num"), ("remote URI", None))


def artifacts_page(store: Store, caller: Caller, workspace: str) -> HTMLResponse:
    rows = artifacts.list_artifacts(store, caller, workspace)
    head = el(
        "tr",
        None,
        el("th", None, "artifact"),
        el("th", None, "type"),
        el("th", {"class": "num"}, "versions"),
        el("th", None, "last version (UTC)"),
        el("th", None, "created by"),
    )
    body_rows = [
        el(
            "tr",
            {"data-name": a["name"]},
            el("td", None, el("a", {"href": artifact_url(workspace, a["name"])}, a["name"])),
            el("td", None, el("span", {"class": "tag"}, a["artifactType"])),
            el("td", {"class": "num"}, fmt.number(a["versions"])),
            el("td", {"class": "nowrap"}, fmt.when(a["lastCreatedAt"])),
            el("td", None, a["createdBy"]),
        )
        for a in rows
    ]
    table = widgets.listing(
        "artifacts",
        head,
        body_rows,
        "No artifacts in this workspace yet: log one with exp.log_artifact(Artifact(name, …)).",
    )
    body = [_title(workspace, "Artifacts"), table]
    crumbs = [("workspaces", urls.home()), (workspace, urls.workspace(workspace)), ("artifacts", None)]
    return page(f"Artifacts · {workspace}", crumbs, body, page_id="artifacts")


def _title(workspace: str, what: str) -> Markup:
    return el("div", {"class": "title-row"}, el("h1", None, what), el("span", {"class": "muted"}, workspace))


def _pick(versions: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    if not wanted:
        return versions[0]
    for v in versions:
        if v["version"] == wanted or (not SEMVER_RE.match(wanted) and wanted in v["aliases"]):
            return v
    raise NotFound(f"artifact {versions[0]['name']!r} has no version or alias {wanted!r}")


def _consumer_keys(v: dict[str, Any]) -> list[str]:
    return [
        c["ref"].split(":", 1)[1]
        for c in v.get("consumers", [])
        if c["ref"].startswith("experiment:") and c.get("relation") == "consumed"
    ]


def artifact_page(store: Store, caller: Caller, workspace: str, name: str, version: str = "") -> HTMLResponse:
    versions = list(reversed(artifacts.list_versions(store, caller, workspace, name)))  # newest first
    chosen = _pick(versions, version)
    keys = [v["sourceExperimentKey"] for v in versions] + [k for v in versions for k in _consumer_keys(v)]
    places = ui_reads.experiment_places(store, keys)
    head = el(
        "tr",
        None,
        [
            el("th", {"class": c}, h)
            for h, c in (
                ("version", None),
                ("aliases", None),
                ("type", None),
                ("files", "num"),
                ("size", "num"),
                ("created by", None),
                ("created (UTC)", None),
                ("source experiment", None),
                ("consumers", "num"),
            )
        ],
    )
    rows = [
        el(
            "tr",
            {
                "data-version": v["version"],
                "class": "selected" if v is chosen else None,
                "aria-current": "true" if v is chosen else None,
            },
            el("td", None, el("a", {"href": artifact_url(workspace, name, v["version"])}, v["version"])),
            el("td", None, aliases(v["aliases"])),
            el("td", None, v["artifactType"]),
            el("td", {"class": "num"}, fmt.number(len(v.get("files", [])))),
            el("td", {"class": "num"}, fmt.size(v["size"])),
            el("td", None, v["createdBy"]),
            el("td", {"class": "nowrap"}, fmt.when(v["createdAt"])),
            el("td", None, exp_link(v["sourceExperimentKey"], places)),
            el("td", {"class": "num"}, fmt.number(len(_consumer_keys(v)))),
        )
        for v in versions
    ]
    body = [
        el(
            "div",
            {"class": "title-row"},
            el("h1", None, name),
            el("span", {"class": "tag"}, chosen["artifactType"]),
            el("span", {"class": "muted"}, f"{len(versions)} version{'s' if len(versions) != 1 else ''}"),
        ),
        el("h2", None, "Versions"),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table", {"class": "grid", "id": "versions"}, el("thead", None, head), el("tbody", None, rows)
            ),
        ),
        _detail(workspace, chosen, places),
        registry_script(),
    ]
    crumbs = [
        ("workspaces", urls.home()),
        (workspace, urls.workspace(workspace)),
        ("artifacts", artifacts_url(workspace)),
        (name, None),
    ]
    return page(f"{name} · artifacts", crumbs, body, page_id="artifact")


def _detail(workspace: str, v: dict[str, Any], places: dict[str, dict[str, Any]]) -> Markup:
    facts = [
        ("version", el("code", None, v["version"])),
        ("aliases", aliases(v["aliases"]) if v["aliases"] else el("span", {"class": "muted"}, "none")),
        ("created by", v["createdBy"]),
        ("created", fmt.when(v["createdAt"]) + " UTC"),
        ("size", fmt.size(v["size"])),
        (
            "source experiment",
            exp_link(v["sourceExperimentKey"], places) or el("span", {"class": "muted"}, "none"),
        ),
    ]
    if v.get("versionTags"):
        facts.append(("tags", widgets.tags(v["versionTags"])))
    consumers = _consumer_keys(v)
    meta = v.get("metadata")
    return el(
        "section",
        {"class": "version-detail", "id": "version-detail", "data-version": v["version"]},
        el("h2", None, f"{v['name']} {v['version']}"),
        el(
            "dl",
            {"class": "facts"},
            [el("div", None, el("dt", None, label), el("dd", None, value)) for label, value in facts],
        ),
        el("h3", None, "Metadata"),
        el("div", {"class": "panel meta-panel"}, widgets.kv_table(widgets.flatten(meta), "metadata"))
        if meta
        else widgets.empty("No metadata."),
        el("h3", None, "Files"),
        files_table(v.get("files", []), "files"),
        el("h3", None, "Consumed by"),
        el(
            "ul",
            {"class": "consumers", "id": "consumers"},
            [el("li", None, exp_link(k, places), _where(k, places)) for k in consumers],
        )
        if consumers
        else widgets.empty("No experiment has consumed this version yet."),
    )


def _where(key: str, places: dict[str, dict[str, Any]]) -> Markup | None:
    p = places.get(key)
    return el("span", {"class": "muted"}, f" {p['workspace']}/{p['project']}") if p else None
