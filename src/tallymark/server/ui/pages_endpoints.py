"""``/{workspace}/endpoints``: the workspace's endpoints (one per deployed model version) with the
requests each served over the last hour(s), from the prediction log (docs/serving.md).

The chart counts logged prediction rows per minute (:func:`request_counts`, read through
:func:`tallymark.service.predictions.read_predictions`, which checks the caller); it is drawn by
``static/js/jobs.js`` with the vendored uPlot. Rows still in an endpoint's queue or spool (not yet
shipped to the store) are not counted yet: the chart says so.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.server.ui import fmt, urls, widgets
from tallymark.server.ui.html import Markup, el, json_script
from tallymark.server.ui.layout import page, workspace_nav
from tallymark.service import endpoints
from tallymark.service.caller import Caller
from tallymark.service.errors import ServiceError
from tallymark.service.store import Store

WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400}
BUCKET_MS = 60_000


def endpoints_url(ws: str, **params: Any) -> str:
    return f"{urls.workspace(ws)}/endpoints{urls._query(params)}"


def status_badge(status: str | None) -> Markup:
    if not status:
        return el("span", {"class": "muted"}, "—")
    return el("span", {"class": f"status status-{status}"}, status)


def version_link(m: dict[str, Any]) -> Markup:
    from tallymark.server.ui.pages_models import model_url

    return el(
        "a",
        {"href": model_url(m["workspace"], m["name"]), "class": "model-link"},
        f"{m['name']} {m['version']}",
    )


def request_counts(
    store: Store, caller: Caller, workspace: str, names: list[str], window_s: int, now_ms: int | None = None
) -> dict[str, Any] | None:
    """Logged prediction rows per minute over the last ``window_s`` seconds for each endpoint:
    ``{"t": [bucket start ms…], "series": [{"name", "counts", "total"}]}``; None without pyarrow."""
    try:
        import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    from tallymark.service import predictions

    end = (now_ms or int(time.time() * 1000)) // BUCKET_MS * BUCKET_MS + BUCKET_MS
    start = end - window_s * 1000
    n = (end - start) // BUCKET_MS
    series = []
    for name in names:
        counts = [0] * n
        try:
            table = predictions.read_predictions(
                store, caller, workspace, name, start, end, with_labels=False
            )
        except ServiceError:
            continue
        if table.num_rows:  # integer division of int64: the minute of each row, counted in Arrow
            buckets = pc.divide(pc.subtract(table["at"], start), BUCKET_MS)
            for item in pc.value_counts(buckets).to_pylist():
                if 0 <= item["values"] < n:
                    counts[item["values"]] += item["counts"]
        series.append({"name": name, "counts": counts, "total": sum(counts)})
    return {"t": [start + i * BUCKET_MS for i in range(n)], "bucketMs": BUCKET_MS, "series": series}


def endpoints_table(
    rows: list[dict[str, Any]], totals: dict[str, int] | None, table_id: str, window: str = ""
) -> Markup:
    head = el(
        "tr",
        None,
        [
            el("th", {"class": c}, h)
            for h, c in (
                ("endpoint", ""),
                ("model version", ""),
                ("status", ""),
                ("URL", ""),
                (f"rows, last {window}" if window else "requests", "num"),
                ("created by", ""),
                ("created (UTC)", ""),
            )
            if totals is not None or c != "num"
        ],
    )
    body = []
    for e in rows:
        problem = e.get("failureReason")
        body.append(
            el(
                "tr",
                {"data-endpoint": e["name"], "data-status": e["status"]},
                el("td", None, el("strong", None, e["name"])),
                el("td", None, version_link(e["model"]), " ", status_badge(e["model"].get("status"))),
                el(
                    "td",
                    None,
                    status_badge(e["status"]),
                    el("div", {"class": "failure-reason small"}, problem) if problem else None,
                ),
                el("td", None, el("code", {"class": "copy"}, e["url"]) if e.get("url") else ""),
                el("td", {"class": "num requests"}, fmt.number(totals.get(e["name"], 0)))
                if totals is not None
                else None,
                el("td", None, e["createdBy"]),
                el("td", {"class": "nowrap"}, fmt.when(e["createdAt"])),
            )
        )
    return widgets.listing(
        table_id,
        head,
        body,
        "No endpoints: Model.deploy(version), job.deploy() or `tallymark deploy WS MODEL VERSION`.",
    )


def endpoints_page(store: Store, caller: Caller, workspace: str, window: str, deleted: bool) -> HTMLResponse:
    window = window if window in WINDOWS else "1h"
    rows = endpoints.list_endpoints(store, caller, workspace, include_deleted=deleted)
    counts = request_counts(store, caller, workspace, [e["name"] for e in rows], WINDOWS[window])
    totals = {s["name"]: s["total"] for s in counts["series"]} if counts else None
    controls = el(
        "form",
        {"class": "filters", "method": "get", "action": endpoints_url(workspace), "id": "endpoint-filters"},
        el("label", {"for": "window"}, "requests over the last"),
        el(
            "select",
            {"name": "window", "id": "window", "class": "autosubmit"},
            [el("option", {"value": w, "selected": w == window}, w) for w in WINDOWS],
        ),
        el(
            "label",
            {"class": "check"},
            el(
                "input",
                {
                    "type": "checkbox",
                    "name": "deleted",
                    "value": "1",
                    "checked": deleted,
                    "class": "autosubmit-check",
                },
            ),
            " show deleted",
        ),
        el("noscript", None, el("button", {"type": "submit"}, "Apply")),
    )
    chart: Any
    if counts is None:
        chart = widgets.empty("The request chart needs pyarrow (pip install 'tallymark[server]').")
    elif not rows:
        chart = None
    else:
        total = sum(s["total"] for s in counts["series"])
        chart = el(
            "figure",
            {"class": "chart-card requests-card"},
            el(
                "figcaption",
                None,
                f"Requests per minute (prediction rows logged), last {window}",
                el("span", {"class": "muted"}, f" · {fmt.number(total)} rows"),
            ),
            el("div", {"class": "chart requests-chart", "id": "requests-chart"}),
            el(
                "p",
                {"class": "muted small"},
                "Rows reach the store in batches: the last few seconds show once the endpoint ships them.",
            ),
            json_script("tm-requests", counts),
        )
    from tallymark.server.ui.pages_jobs import jobs_script

    body = [
        el(
            "div",
            {"class": "title-row"},
            el("h1", None, "Endpoints"),
            el("span", {"class": "muted"}, workspace),
        ),
        workspace_nav(workspace, "endpoints"),
        el("div", {"class": "toolbar"}, controls),
        chart,
        endpoints_table(rows, totals, "endpoints", window),
        jobs_script(),
    ]
    crumbs = [("workspaces", urls.home()), (workspace, urls.workspace(workspace)), ("endpoints", None)]
    return page(f"Endpoints · {workspace}", crumbs, body, page_id="endpoints", charts=counts is not None)


def model_endpoints(store: Store, caller: Caller, workspace: str, model: str) -> Markup:
    """The model page's section: the endpoints serving any of this model's versions."""
    try:
        rows = [e for e in endpoints.list_endpoints(store, caller, workspace) if e["model"]["name"] == model]
    except ServiceError:
        rows = []
    return el(
        "section",
        {"class": "block", "id": "endpoints-section"},
        el(
            "h2",
            None,
            "Endpoints",
            el("span", {"class": "badge"}, len(rows)),
            " ",
            el("a", {"class": "button small", "href": endpoints_url(workspace)}, "all endpoints"),
        ),
        endpoints_table(rows, None, "model-endpoints")
        if rows
        else widgets.empty(f"No endpoint serves {model}: Model.deploy(version) or `tallymark deploy`."),
    )
