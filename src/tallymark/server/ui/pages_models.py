"""``/{workspace}/models`` (the registry) and ``/{workspace}/models/{name}`` (one registered model:
pending status requests with Approve/Reject, versions with statuses and files, the full history of
transitions, decided requests and the lineage of the version in production).

Approve and Reject call the REST API (``POST /api/v1/requests/{id}/approve|reject``) from
``static/js/registry.js``, as the identity typed into the "acting as" box (sent as
``X-Tallymark-User``: the ``--no-auth`` identity seam until authentication lands). The script then
fetches this page again and swaps ``#model-body``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.server.ui import fmt, urls, widgets
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import page
from tallymark.server.ui.pages_artifacts import (
    aliases,
    artifact_url,
    exp_link,
    files_table,
    registry_script,
    sha,
)
from tallymark.server.ui.pages_endpoints import model_endpoints
from tallymark.service import registry, ui_reads
from tallymark.service.caller import Caller
from tallymark.service.store import Store


def models_url(ws: str) -> str:
    return f"{urls.workspace(ws)}/models"


def model_url(ws: str, name: str) -> str:
    return f"{models_url(ws)}/{urls._q(name)}"


def status_badge(status: str | None) -> Markup | str:
    if not status:
        return el("span", {"class": "muted"}, "—")
    return el("span", {"class": f"status status-{status}"}, status)


def models_page(store: Store, caller: Caller, workspace: str) -> HTMLResponse:
    rows = registry.list_models(store, caller, workspace)
    head = el(
        "tr",
        None,
        el("th", None, "model"),
        el("th", {"class": "num"}, "versions"),
        el("th", None, "latest"),
        el("th", None, "in production"),
        el("th", {"class": "num"}, "pending requests"),
    )
    body_rows = [
        el(
            "tr",
            {"data-name": m["name"]},
            el("td", None, el("a", {"href": model_url(workspace, m["name"])}, m["name"])),
            el("td", {"class": "num"}, fmt.number(m["versions"])),
            el("td", None, m["latest"] or ""),
            el(
                "td",
                {"class": "production"},
                [el("span", {"class": "status status-production"}, v) for v in m["production"]]
                or el("span", {"class": "muted"}, "none"),
            ),
            el(
                "td",
                {"class": "num pending"},
                el("span", {"class": "pending-count"}, fmt.number(m["pendingRequests"]))
                if m["pendingRequests"]
                else "0",
            ),
        )
        for m in rows
    ]
    table = widgets.listing(
        "models", head, body_rows, "No registered models yet: exp.log_model(…) then exp.register_model(name)."
    )
    body = [
        el(
            "div", {"class": "title-row"}, el("h1", None, "Models"), el("span", {"class": "muted"}, workspace)
        ),
        table,
    ]
    crumbs = [("workspaces", urls.home()), (workspace, urls.workspace(workspace)), ("models", None)]
    return page(f"Models · {workspace}", crumbs, body, page_id="models")


def model_page(store: Store, caller: Caller, workspace: str, name: str) -> HTMLResponse:
    model = registry.get_model(store, caller, workspace, name)
    versions = list(reversed(model["versions"]))  # newest first
    decided = [r for r in registry.list_requests(store, caller, workspace, name) if r["state"] != "pending"]
    places = ui_reads.experiment_places(store, [v["experimentKey"] for v in versions])
    production = [v for v in versions if v["status"] == "production"]
    inputs = {
        v["version"]: registry.training_inputs(store, caller, workspace, name, v["version"])
        for v in production
    }
    status_of = {v["version"]: v["status"] for v in versions}
    head = [
        el("h1", None, name),
        el("span", {"class": "muted"}, f"{len(versions)} version{'s' if len(versions) != 1 else ''}"),
    ]
    body = [
        el("div", {"class": "title-row"}, head),
        el("p", {"class": "description"}, model["description"]) if model.get("description") else None,
        _acting_as(),
        el(
            "div",
            {"id": "model-body"},
            el("p", {"class": "decision-status", "id": "decision-status", "role": "status"}),
            _requests(model["pendingRequests"], status_of),
            _versions(versions, places, model["pendingRequests"]),
            _lineage(workspace, production, inputs, _flows(store, caller, workspace, name, versions)),
            model_endpoints(store, caller, workspace, name),
            _history(versions),
            _decided(decided),
        ),
        registry_script(),
    ]
    crumbs = [
        ("workspaces", urls.home()),
        (workspace, urls.workspace(workspace)),
        ("models", models_url(workspace)),
        (name, None),
    ]
    return page(f"{name} · models", crumbs, body, page_id="model")


def _acting_as() -> Markup:
    return el(
        "form",
        {"class": "acting-as", "id": "acting-as", "autocomplete": "off"},
        el("label", {"for": "acting-as-user"}, "Acting as"),
        el(
            "input",
            {
                "type": "text",
                "id": "acting-as-user",
                "name": "user",
                "placeholder": "the server's default user",
                "maxlength": "200",
                "pattern": r"[\w.@+\-]{1,200}",
                "spellcheck": "false",
            },
        ),
        el(
            "span",
            {"class": "muted hint"},
            "Sent as X-Tallymark-User with approvals on a --no-auth server or `tallymark ui` (with "
            "authentication on, you act as who you logged in as); "
            "kept in this browser.",
        ),
    )


def _requests(pending: list[dict[str, Any]], status_of: dict[str, str]) -> Markup:
    section = [el("h2", None, "Pending requests", el("span", {"class": "badge"}, len(pending)))]
    if not pending:
        section.append(widgets.empty("No pending status requests."))
        return el("section", {"class": "block", "id": "requests"}, section)
    rows = [
        el(
            "tr",
            {"data-request-id": r["id"], "data-version": r["version"]},
            el("td", {"class": "num"}, f"#{r['id']}"),
            el("td", None, el("code", None, r["version"])),
            el(
                "td",
                {"class": "nowrap"},
                status_badge(status_of.get(r["version"])),
                el("span", {"class": "arrow"}, " → "),
                status_badge(r["toStatus"]),
            ),
            el("td", {"class": "requested-by"}, r["requestedBy"]),
            el("td", {"class": "nowrap"}, fmt.when(r["requestedAt"])),
            el("td", {"class": "comment"}, r.get("comment") or ""),
            el(
                "td",
                {"class": "decide"},
                el(
                    "div",
                    {"class": "decide-row"},
                    el(
                        "input",
                        {
                            "type": "text",
                            "class": "decision-comment",
                            "placeholder": "comment (optional)",
                            "aria-label": f"comment on request {r['id']}",
                            "maxlength": "10000",
                        },
                    ),
                    el(
                        "button",
                        {"type": "button", "class": "primary approve", "data-action": "approve"},
                        "Approve",
                    ),
                    el("button", {"type": "button", "class": "reject", "data-action": "reject"}, "Reject"),
                ),
                el("p", {"class": "decision-error", "role": "alert", "hidden": True}),
            ),
        )
        for r in pending
    ]
    head = el(
        "tr",
        None,
        [
            el("th", None, h)
            for h in ("request", "version", "change", "requested by", "at (UTC)", "comment", "decision")
        ],
    )
    section.append(
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid requests", "id": "pending"},
                el("thead", None, head),
                el("tbody", None, rows),
            ),
        )
    )
    return el("section", {"class": "block", "id": "requests"}, section)


def _versions(
    versions: list[dict[str, Any]], places: dict[str, dict[str, Any]], pending: list[dict[str, Any]]
) -> Markup:
    waiting = {r["version"]: r["toStatus"] for r in pending}
    head = el(
        "tr",
        None,
        [
            el("th", None, h)
            for h in (
                "version",
                "status",
                "tags",
                "source experiment",
                "created by",
                "created (UTC)",
                "files",
            )
        ],
    )
    rows = []
    for v in versions:
        files = [
            el(
                "li",
                None,
                el("span", {"class": "value"}, f["logicalPath"]),
                " ",
                sha(f.get("sha256"))
                if f.get("sha256")
                else el("span", {"class": "value uri"}, f.get("uri") or ""),
                el("span", {"class": "muted"}, f" {fmt.size(f.get('size'))}")
                if f.get("size") is not None
                else None,
            )
            for f in v["files"]
        ]
        if v.get("remoteUri"):
            files.append(el("li", None, el("span", {"class": "value uri"}, v["remoteUri"])))
        rows.append(
            el(
                "tr",
                {"data-version": v["version"], "data-status": v["status"]},
                el("td", None, el("code", None, v["version"])),
                el(
                    "td",
                    {"class": "nowrap"},
                    status_badge(v["status"]),
                    el("span", {"class": "muted waiting"}, f" → {waiting[v['version']]}?")
                    if v["version"] in waiting
                    else None,
                ),
                el("td", None, widgets.tags(v["tags"]) if v["tags"] else ""),
                el("td", None, exp_link(v["experimentKey"], places)),
                el("td", None, v["createdBy"]),
                el("td", {"class": "nowrap"}, fmt.when(v["createdAt"])),
                el("td", {"class": "model-files"}, el("ul", {"class": "plain-list"}, files)),
            )
        )
    return el(
        "section",
        {"class": "block", "id": "versions-section"},
        el("h2", None, "Versions"),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table", {"class": "grid", "id": "versions"}, el("thead", None, head), el("tbody", None, rows)
            ),
        ),
    )


def _history(versions: list[dict[str, Any]]) -> Markup:
    events = [(h["at"], i, v["version"], h) for v in versions for i, h in enumerate(v["history"])]
    events.sort(key=lambda e: (e[0] or 0, e[1]), reverse=True)  # newest first
    rows = [
        el(
            "tr",
            None,
            el("td", None, el("code", None, ver)),
            el(
                "td",
                {"class": "nowrap"},
                status_badge(h["from"]),
                el("span", {"class": "arrow"}, " → "),
                status_badge(h["to"]),
            ),
            el("td", {"class": "actor"}, h["actor"]),
            el("td", {"class": "nowrap"}, el("time", {"datetime": fmt.iso(at)}, fmt.when(at))),
            el("td", {"class": "comment"}, h.get("comment") or ""),
            el("td", {"class": "num"}, f"#{h['requestId']}" if h.get("requestId") else ""),
        )
        for at, _, ver, h in events
    ]
    head = el(
        "tr",
        None,
        [el("th", None, h) for h in ("version", "transition", "actor", "time (UTC)", "comment", "request")],
    )
    return el(
        "section",
        {"class": "block", "id": "history-section"},
        el("h2", None, "History"),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid compact", "id": "history"},
                el("thead", None, head),
                el("tbody", None, rows),
            ),
        ),
    )


def _decided(decided: list[dict[str, Any]]) -> Markup | None:
    if not decided:
        return None
    rows = [
        el(
            "tr",
            {"data-request-id": r["id"], "data-state": r["state"]},
            el("td", {"class": "num"}, f"#{r['id']}"),
            el("td", None, el("code", None, r["version"])),
            el("td", None, status_badge(r["toStatus"])),
            el("td", None, r["requestedBy"]),
            el("td", {"class": "comment"}, r.get("comment") or ""),
            el("td", None, el("span", {"class": f"state state-{r['state']}"}, r["state"])),
            el("td", None, r.get("decidedBy") or ""),
            el("td", {"class": "nowrap"}, fmt.when(r.get("decidedAt"))),
            el("td", {"class": "comment"}, r.get("decisionComment") or ""),
        )
        for r in sorted(decided, key=lambda r: (r.get("decidedAt") or 0, r["id"]), reverse=True)
    ]
    heads = (
        "request",
        "version",
        "to",
        "requested by",
        "comment",
        "decision",
        "by",
        "at (UTC)",
        "decision comment",
    )
    return el(
        "section",
        {"class": "block", "id": "decided-section"},
        el("h2", None, "Decided requests"),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid compact", "id": "decided"},
                el("thead", None, el("tr", None, [el("th", None, h) for h in heads])),
                el("tbody", None, rows),
            ),
        ),
    )


def _layers(graph: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The upstream graph's nodes in columns, sources first: a node's column is its longest path
    to the root, so a dataset that a job and its experiment both consumed sits before the job."""
    nodes = {n["ref"]: n for n in graph["nodes"]}
    depth = {graph["root"]: 0}
    for _ in range(len(nodes)):  # relax along edges (a DAG of a few nodes)
        moved = False
        for e in graph["edges"]:
            if e["dst"] in depth and depth.get(e["src"], -1) < depth[e["dst"]] + 1:
                depth[e["src"]] = depth[e["dst"]] + 1
                moved = True
        if not moved:
            break
    cols: dict[int, list[dict[str, Any]]] = {}
    for ref, d in depth.items():
        cols.setdefault(d, []).append(nodes[ref])
    return [cols[d] for d in sorted(cols, reverse=True)]


COLUMN_TITLES = {
    "artifact_version": "data",
    "job": "job",
    "experiment": "experiment",
    "model_version": "model",
}


def _flows(
    store: Store, caller: Caller, workspace: str, name: str, versions: list[dict[str, Any]]
) -> list[Markup]:
    """For each version in production (else the newest): what made it, left to right — dataset
    versions → the job that consumed them and trained → the experiment → the model version."""
    from tallymark.server.ui.pages_jobs import node_card
    from tallymark.service.errors import ServiceError
    from tallymark.service.lineage import get_lineage

    chosen = [v for v in versions if v["status"] == "production"] or versions[:1]
    out = []
    for v in chosen:
        try:
            graph = get_lineage(
                store, caller, f"model:{workspace}/{name}:{v['version']}", "upstream", depth=6
            )
        except ServiceError:
            continue
        cols: list[Any] = []
        for layer in _layers(graph):
            if cols:
                cols.append(el("div", {"class": "lineage-arrow"}, "→"))
            kinds = list(dict.fromkeys(COLUMN_TITLES.get(n["kind"], n["kind"]) for n in layer))
            cols.append(
                el(
                    "div",
                    {"class": "lineage-col", "data-kinds": " ".join(n["kind"] for n in layer)},
                    el("h3", None, " · ".join(kinds)),
                    [node_card(n) for n in layer],
                )
            )
        out.append(
            el(
                "div",
                {"class": "lineage-flow", "data-version": v["version"]},
                el(
                    "p",
                    {"class": "lineage-intro"},
                    "How ",
                    el("code", None, v["version"]),
                    " ",
                    status_badge(v["status"]),
                    " was made:",
                ),
                el("div", {"class": "lineage"}, cols),
            )
        )
    return out


def _lineage(
    workspace: str,
    production: list[dict[str, Any]],
    inputs: dict[str, list[dict[str, Any]]],
    flows: Sequence[Markup] = (),
) -> Markup:
    parts: list[Any] = [el("h2", None, "Lineage"), *flows]
    if not production:
        parts.append(widgets.empty("No version is in production: its training data shows here once one is."))
    for v in production:
        parts.append(
            el(
                "p",
                {"class": "lineage-intro"},
                "Training inputs of ",
                el("code", None, v["version"]),
                " ",
                status_badge("production"),
                ": the dataset versions the experiment that registered it consumed.",
            )
        )
        nodes = inputs.get(v["version"], [])
        if not nodes:
            parts.append(widgets.empty("That experiment consumed no artifact versions."))
        for n in nodes:
            parts.append(
                el(
                    "div",
                    {"class": "input-card", "data-artifact": n["name"], "data-version": n["version"]},
                    el(
                        "div",
                        {"class": "input-head"},
                        el("span", {"class": "tag"}, n.get("artifactType", "")),
                        el(
                            "a",
                            {"href": artifact_url(n.get("workspace") or workspace, n["name"], n["version"])},
                            f"{n['name']} {n['version']}",
                        ),
                        aliases(n.get("aliases", [])),
                    ),
                    files_table(n.get("files", [])),
                )
            )
    return el("section", {"class": "block", "id": "lineage"}, parts)
