"""``/`` (workspaces) and ``/{workspace}`` (projects)."""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from tallymark.server.ui import fmt, urls
from tallymark.server.ui.html import el
from tallymark.server.ui.layout import page, workspace_nav
from tallymark.service import experiments
from tallymark.service.caller import Caller
from tallymark.service.store import Store


def workspaces_page(store: Store, caller: Caller) -> HTMLResponse:
    """The workspace list: those the caller has a role in."""
    rows = experiments.list_workspaces(store, caller)
    if rows:
        table = el(
            "table",
            {"class": "grid", "id": "workspaces"},
            el(
                "thead",
                None,
                el("tr", None, el("th", None, "workspace"), el("th", {"class": "num"}, "projects")),
            ),
            el(
                "tbody",
                None,
                [
                    el(
                        "tr",
                        None,
                        el("td", None, el("a", {"href": urls.workspace(w["name"])}, w["name"])),
                        el("td", {"class": "num"}, fmt.number(w["projects"])),
                    )
                    for w in rows
                ],
            ),
        )
    else:
        table = el(
            "div",
            {"class": "empty"},
            el("p", None, "No experiments yet."),
            el("p", None, "Run ", el("code", None, "tallymark demo"), " or log one with the SDK:"),
            el(
                "pre",
                None,
                "from tallymark import Experiment\n"
                'with Experiment(project_name="my-project", workspace="me") as exp:\n'
                '    exp.log_metric("loss", 0.5, step=1)',
            ),
        )
    body = [el("h1", None, "Workspaces"), table]
    return page("Workspaces", [("workspaces", None)], body, page_id="workspaces")


def projects_page(store: Store, caller: Caller, workspace: str) -> HTMLResponse:
    rows = experiments.list_projects(store, caller, workspace)
    head = el(
        "tr",
        None,
        el("th", None, "project"),
        el("th", {"class": "num"}, "experiments"),
        el("th", None, "last experiment (UTC)"),
    )
    body_rows = [
        el(
            "tr",
            None,
            el("td", None, el("a", {"href": urls.project(workspace, p["name"])}, p["name"])),
            el("td", {"class": "num"}, fmt.number(p["experiments"])),
            el("td", None, fmt.when(p["last_created_at"])),
        )
        for p in rows
    ]
    body = [
        el("h1", None, workspace),
        workspace_nav(workspace, "projects"),
        el(
            "table",
            {"class": "grid", "id": "projects"},
            el("thead", None, head),
            el("tbody", None, body_rows),
        ),
    ]
    crumbs = [("workspaces", urls.home()), (workspace, None)]
    return page(workspace, crumbs, body, page_id="projects")
