"""``/{workspace}/{project}/compare?keys=k1,k2,…``: 2–N experiments side by side.

Sections (each with an anchor): parameters (differences highlighted; ``?params=diff`` shows only
those), metrics (last values with the best marked, then overlaid charts), confusion matrices side by
side, curves overlaid (ROC, PR…), and custom Python panels rendered by ``/api/v1/panels/render``.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.server.ui import charts, fmt, urls, widgets
from tallymark.server.ui.html import Markup, el, json_script
from tallymark.server.ui.layout import error_page, page
from tallymark.server.ui.panel_render import listing
from tallymark.service import ui_reads
from tallymark.service.caller import Caller
from tallymark.service.store import Store

MAX_KEYS = 50
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "fp", "fn", "time", "latency", "perplexity")


def compare_page(
    store: Store, caller: Caller, workspace: str, project: str, keys: list[str], query: dict[str, str]
) -> HTMLResponse:
    crumbs = [
        ("workspaces", urls.home()),
        (workspace, urls.workspace(workspace)),
        (project, urls.project(workspace, project)),
        ("compare", None),
    ]
    if not keys:
        return error_page(404, "Nothing to compare: tick two or more experiments in the table.", crumbs[1:3])
    if len(keys) > MAX_KEYS:
        return error_page(422, f"Compare at most {MAX_KEYS} experiments at once.", crumbs[1:3])
    exps = ui_reads.experiments_by_keys(store, caller, keys)
    for i, e in enumerate(exps):
        e["label"] = e.get("name") or e["key"][:12]
        e["color"] = i % 20
    only_diff = query.get("params") == "diff"
    state = charts.chart_state(query)
    series_metrics = sorted(
        {n for e in exps for n, m in e["metrics"].items() if m["count"] > 1 and not n.startswith("sys.")},
        key=_metric_order,
    )
    cms = ui_reads.items_for_keys(store, caller, keys, "confusion_matrix")
    curves = charts.curve_data(
        ui_reads.items_for_keys(store, caller, keys, "curve"),
        [{"key": e["key"], "name": e["label"]} for e in exps],
    )
    panel_list = listing(store)
    sections = [
        ("parameters", "Parameters"),
        ("metrics", "Metrics"),
        ("confusion", "Confusion matrices"),
        ("curves", "Curves"),
        ("panels", "Panels"),
    ]
    body = [
        el("div", {"class": "title-row"}, el("h1", None, f"Compare {len(exps)} experiments")),
        _legend(exps, workspace, project, query),
        el(
            "nav",
            {"class": "section-nav"},
            [el("a", {"href": f"#{sid}"}, label) for sid, label in sections],
        ),
        _params_section(exps, workspace, project, keys, only_diff),
        _metrics_section(exps, series_metrics, state),
        _cm_section(exps, cms),
        el(
            "section",
            {"id": "curves", "class": "block"},
            el("h2", None, "Curves"),
            charts.curve_grid(curves) if curves["curves"] else widgets.empty("No curves logged."),
        ),
        _panels_section(panel_list),
        json_script(
            "tm-charts",
            charts.page_data([{"key": e["key"], "name": e["label"]} for e in exps], series_metrics, state),
        ),
        json_script("tm-curves", curves),
        json_script("tm-panels", {"keys": keys, "panels": [p["name"] for p in panel_list["panels"]]}),
    ]
    preload = charts.preload_urls([{"key": e["key"]} for e in exps], series_metrics)
    return page(f"Compare {len(exps)}", crumbs, body, page_id="compare", charts=True, preload=preload)


def _metric_order(name: str) -> tuple[int, str]:
    low = name.lower()
    return (0 if "val" in low or "test" in low else 1, name)


def _legend(exps: list[dict[str, Any]], workspace: str, project: str, query: dict[str, str]) -> Markup:
    keys = [e["key"] for e in exps]
    items = []
    for e in exps:
        rest = [k for k in keys if k != e["key"]]
        items.append(
            el(
                "li",
                {"data-key": e["key"]},
                el("span", {"class": f"swatch c{e['color']}"}),
                el("a", {"href": urls.experiment(e["workspace"], e["project"], e["key"])}, e["label"]),
                el("code", {"class": "key"}, e["key"][:8]),
                el("span", {"class": f"status status-{e['status']}"}, e["status"]),
                widgets.tags(e["tags"]) if e["tags"] else None,
                el(
                    "a",
                    {
                        "class": "remove",
                        "href": urls.compare(workspace, project, rest),
                        "title": "remove from comparison",
                    },
                    "×",
                )
                if len(rest) >= 1
                else None,
            )
        )
    return el("ul", {"class": "legend", "id": "compare-legend"}, items)


def _same(values: list[Any]) -> bool:
    first = values[0]
    return all(v == first and type(v) is type(first) for v in values[1:])


def _params_section(
    exps: list[dict[str, Any]], workspace: str, project: str, keys: list[str], only_diff: bool
) -> Markup:
    names = sorted({n for e in exps for n in e["params"]})
    missing = object()
    rows = []
    n_diff = 0
    for name in names:
        values = [e["params"].get(name, missing) for e in exps]
        differs = not _same(values)
        n_diff += differs
        if only_diff and not differs:
            continue
        rows.append(
            el(
                "tr",
                {"class": "differs" if differs else None, "data-param": name},
                el("th", {"scope": "row"}, name),
                [
                    el("td", {"class": "missing"}, "—")
                    if v is missing
                    else el("td", {"class": "value"}, fmt.param(v))
                    for v in values
                ],
            )
        )
    toggle = (
        el(
            "a",
            {"href": urls.compare(workspace, project, keys) + "#parameters", "class": "button small"},
            "show all",
        )
        if only_diff
        else el(
            "a",
            {
                "href": urls.compare(workspace, project, keys, params="diff") + "#parameters",
                "class": "button small",
            },
            "only differences",
        )
    )
    head = el(
        "tr",
        None,
        el("th", None, "parameter"),
        [el("th", None, el("span", {"class": f"swatch c{e['color']}"}), e["label"]) for e in exps],
    )
    return el(
        "section",
        {"id": "parameters", "class": "block"},
        el(
            "div",
            {"class": "section-head"},
            el("h2", None, "Parameters"),
            el("span", {"class": "muted", "id": "param-diff-count"}, f"{n_diff} of {len(names)} differ"),
            toggle,
        ),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid compact compare", "id": "param-diff"},
                el("thead", None, head),
                el("tbody", None, rows),
            ),
        )
        if names
        else widgets.empty("No parameters logged."),
    )


def _best(name: str, values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    if len(nums) < 2 or len(set(nums)) == 1:
        return None
    lower = any(w in name.lower() for w in LOWER_IS_BETTER)
    return min(nums) if lower else max(nums)


def _metrics_section(exps: list[dict[str, Any]], series_metrics: list[str], state: dict[str, Any]) -> Markup:
    names = sorted({n for e in exps for n in e["metrics"] if not n.startswith("sys.")}, key=_metric_order)
    rows = []
    for name in names:
        values = [e["metrics"].get(name, {}).get("valueCurrent") for e in exps]
        best = _best(name, values)
        rows.append(
            el(
                "tr",
                {"data-metric": name},
                el("th", {"scope": "row"}, name),
                [
                    el(
                        "td",
                        {
                            "class": "num" + (" best" if best is not None and v == best else ""),
                            "title": "" if v is None else fmt.exact(v),
                        },
                        "—" if v is None else fmt.metric(v),
                    )
                    for v in values
                ],
            )
        )
    head = el(
        "tr",
        None,
        el("th", None, "metric (last value)"),
        [
            el("th", {"class": "num"}, el("span", {"class": f"swatch c{e['color']}"}), e["label"])
            for e in exps
        ],
    )
    return el(
        "section",
        {"id": "metrics", "class": "block"},
        el("h2", None, "Metrics"),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid compact compare", "id": "metric-compare"},
                el("thead", None, head),
                el("tbody", None, rows),
            ),
        )
        if rows
        else widgets.empty("No metrics logged."),
        charts.controls(state, len(series_metrics)) if series_metrics else None,
        charts.grid(series_metrics) if series_metrics else None,
    )


def _cm_section(exps: list[dict[str, Any]], cms: dict[str, list[dict[str, Any]]]) -> Markup:
    titles: dict[str, None] = {}
    for e in exps:
        for cm in cms.get(e["key"], []):
            titles.setdefault(cm["data"].get("title") or cm["name"], None)
    groups = []
    for title in titles:
        figures = []
        for e in exps:
            mine = [cm for cm in cms.get(e["key"], []) if (cm["data"].get("title") or cm["name"]) == title]
            if mine:
                cm = mine[-1]  # the last logged (e.g. the final step)
                caption = e["label"] + (f" · step {cm['step']}" if cm["step"] is not None else "")
                figures.append(
                    el(
                        "div",
                        {"class": "cm-wrap", "data-key": e["key"]},
                        widgets.confusion_matrix(cm["data"], caption, e["color"]),
                    )
                )
        groups.append(
            el("div", {"class": "cm-group"}, el("h3", None, title), el("div", {"class": "cm-row"}, figures))
        )
    return el(
        "section",
        {"id": "confusion", "class": "block"},
        el("h2", None, "Confusion matrices"),
        groups or widgets.empty("No confusion matrices logged."),
    )


def _panels_section(panel_list: dict[str, Any]) -> Markup:
    cards = [
        el(
            "figure",
            {"class": "panel-card", "data-panel": p["name"]},
            el(
                "figcaption",
                None,
                p["name"],
                el("span", {"class": "muted"}, " · " + p["description"]) if p["description"] else None,
            ),
            el(
                "div",
                {"class": "panel-body", "data-state": "waiting"},
                el("p", {"class": "muted"}, "rendering…"),
            ),
        )
        for p in panel_list["panels"]
    ]
    errors = [
        el(
            "div",
            {"class": "panel-error"},
            el("strong", None, f"could not load {e['source']}"),
            el("pre", None, e["message"]),
        )
        for e in panel_list["errors"]
    ]
    hint = el(
        "p",
        {"class": "muted"},
        "Add your own: decorate a function with ",
        el("code", None, '@tallymark.panel("name")'),
        " in a .py file in HOME/panels/ or $TALLYMARK_PANELS_DIR (see docs/ui.md).",
    )
    return el(
        "section",
        {"id": "panels", "class": "block"},
        el("h2", None, "Panels"),
        errors,
        el("div", {"class": "panel-grid"}, cards) if cards else None,
        hint if not cards else None,
    )
