"""Server side of the charts: the controls (smoothing, log scale, x axis) with their state from the
URL, the empty chart cards, and the JSON ``static/js/charts.js`` reads to fill them.

Metric charts fetch ``GET /api/v1/experiments/{key}/metric?name=&points=N`` (LTTB-downsampled on the
server) when they scroll into view; curves are small and travel in the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tallymark.server.ui import urls
from tallymark.server.ui.html import Markup, el

X_AXES = {"step": "step", "epoch": "epoch", "time": "wall time", "relative": "relative time"}
DEFAULT_POINTS = 1000
MAX_CURVE_POINTS = 5000


def chart_state(query: dict[str, str], default_x: str = "step") -> dict[str, Any]:
    """``smooth`` (0–0.99), ``log`` (0/1), ``x`` (step|epoch|time|relative) from the URL."""
    try:
        smooth = min(0.99, max(0.0, float(query.get("smooth", "0"))))
    except ValueError:
        smooth = 0.0
    x = query.get("x", default_x)
    return {
        "smooth": round(smooth, 2),
        "log": query.get("log") in ("1", "true", "on"),
        "x": x if x in X_AXES else default_x,
        "filter": query.get("metric", "")[:200],
        "points": DEFAULT_POINTS,
    }


def controls(state: dict[str, Any], n_charts: int) -> Markup:
    return el(
        "div",
        {"class": "chart-controls", "id": "chart-controls"},
        el(
            "label",
            None,
            "smoothing ",
            el(
                "input",
                {
                    "type": "range",
                    "id": "smooth",
                    "min": 0,
                    "max": 0.99,
                    "step": 0.01,
                    "value": state["smooth"],
                },
            ),
            el("output", {"id": "smooth-value", "for": "smooth"}, f"{state['smooth']:.2f}"),
        ),
        el(
            "label",
            None,
            el("input", {"type": "checkbox", "id": "log-y", "checked": state["log"]}),
            " log scale",
        ),
        el(
            "label",
            None,
            "x axis ",
            el(
                "select",
                {"id": "x-axis"},
                [el("option", {"value": k, "selected": k == state["x"]}, v) for k, v in X_AXES.items()],
            ),
        ),
        el(
            "input",
            {
                "type": "search",
                "id": "metric-filter",
                "placeholder": f"filter {n_charts} charts…",
                "value": state["filter"],
            },
        )
        if n_charts > 4
        else None,
    )


def grid(metrics: Sequence[str]) -> Markup:
    return el(
        "div",
        {"class": "chart-grid", "id": "metric-charts"},
        [
            el(
                "figure",
                {"class": "chart-card", "data-metric": m},
                el("figcaption", None, m),
                el("div", {"class": "chart", "data-state": "waiting"}),
            )
            for m in metrics
        ],
    )


COARSE_POINTS = 100
COARSE_FROM = 5  # experiments: with this many, charts are first drawn coarse, then refined
PRELOADED_CHARTS = 1  # more would compete with the first for the server


def page_data(
    exps: Sequence[dict[str, Any]], metrics: Sequence[str], state: dict[str, Any]
) -> dict[str, Any]:
    """What ``charts.js`` needs; with several experiments also the URLs of the first charts' series
    (the page preloads them, see :func:`preload_urls`)."""
    coarse = COARSE_POINTS if len(exps) >= COARSE_FROM else 0
    data: dict[str, Any] = {
        "experiments": list(exps),
        "metrics": list(metrics),
        "state": {**state, "coarse": coarse},
    }
    data["preload"] = dict(zip(metrics, preload_urls(exps, metrics), strict=False))
    return data


def preload_urls(exps: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[str]:
    """``/-/series`` URLs of the first charts' first request (coarse with many experiments)."""
    if len(exps) < 2:
        return []
    points = COARSE_POINTS if len(exps) >= COARSE_FROM else DEFAULT_POINTS
    return [urls.series([e["key"] for e in exps], m, points) for m in metrics[:PRELOADED_CHARTS]]


def curve_data(
    items_by_key: dict[str, list[dict[str, Any]]], exps: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Curves grouped by name, one series per (experiment, step), in experiment order."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for idx, e in enumerate(exps):
        for item in items_by_key.get(e["key"], []):
            data = item["data"]
            x, y = list(data.get("x", [])), list(data.get("y", []))
            stride = max(1, len(x) // MAX_CURVE_POINTS)
            label = e["name"] + (f" (step {item['step']})" if item.get("step") is not None else "")
            by_name.setdefault(item["name"], []).append(
                {"key": e["key"], "exp": idx, "name": label, "x": x[::stride], "y": y[::stride]}
            )
    return {"curves": [{"name": n, "series": s} for n, s in by_name.items()]}


def curve_grid(data: dict[str, Any]) -> Markup:
    return el(
        "div",
        {"class": "chart-grid curves", "id": "curve-charts"},
        [
            el(
                "figure",
                {"class": "chart-card", "data-curve": c["name"]},
                el("figcaption", None, c["name"]),
                el("div", {"class": "chart", "data-state": "waiting"}),
            )
            for c in data["curves"]
        ],
    )
