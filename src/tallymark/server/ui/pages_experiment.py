"""``/{workspace}/{project}/{key}?tab=…``: one experiment, one tab rendered per request.

Tabs: overview, parameters, metrics, system, confusion, curves, assets, code, environment, git,
stdout, artifacts, jobs (the jobs ``log_training_job`` linked to it), lineage. Chart tabs also keep
their controls in the URL (``smooth``, ``log``, ``x``), so a shared link shows the same view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.sdk.autolog.redact import redact_environment, redact_git
from tallymark.server.ui import charts, fmt, urls, widgets
from tallymark.server.ui.html import Markup, el, json_script
from tallymark.server.ui.layout import page
from tallymark.service import assets, experiments, reads, ui_reads
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound
from tallymark.service.store import Store

TABS: list[tuple[str, str, str | None]] = [  # (id, label, count key)
    ("overview", "Overview", None),
    ("parameters", "Parameters", "params"),
    ("metrics", "Metrics", "metrics"),
    ("system", "System metrics", "sys_metrics"),
    ("confusion", "Confusion matrices", "confusion_matrix"),
    ("curves", "Curves", "curve"),
    ("assets", "Assets", "assets"),
    ("code", "Code", "code"),
    ("environment", "Environment", "packages"),
    ("git", "Git", None),
    ("stdout", "Output", "stdout"),
    ("artifacts", "Artifacts", None),
    ("jobs", "Jobs", "jobs"),
    ("lineage", "Lineage", None),
]
TEXT_PREVIEW = {"text/plain", "text/csv", "application/json"}
IMAGE_PREVIEW = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def experiment_page(
    store: Store, caller: Caller, workspace: str, project: str, key: str, tab: str, query: dict[str, str]
) -> HTMLResponse:
    info = experiments.get_experiment(store, caller, key)
    if (info["workspace"], info["project"]) != (workspace, project):
        raise NotFound(
            f"experiment {key} is in {info['workspace']}/{info['project']}, not {workspace}/{project}"
        )
    if tab not in {t[0] for t in TABS}:
        tab = "overview"
    counts = ui_reads.experiment_counts(store, caller, key)
    from tallymark.server.ui.pages_jobs import experiment_job_nodes

    linked_jobs = experiment_job_nodes(store, caller, key)  # the jobs log_training_job linked to it
    counts = {**counts, "jobs": len(linked_jobs)}
    ctx = {
        "store": store,
        "caller": caller,
        "info": info,
        "key": key,
        "query": query,
        "counts": counts,
        "jobs": linked_jobs,
    }
    content, needs_charts = RENDERERS[tab](ctx)
    title = info.get("name") or key[:12]
    body = [
        _header(info, store, caller),
        _tabs(info, tab, counts),
        el("section", {"class": f"tab-body tab-{tab}", "id": f"tab-{tab}"}, content),
    ]
    crumbs = [
        ("workspaces", urls.home()),
        (workspace, urls.workspace(workspace)),
        (project, urls.project(workspace, project)),
        (title, None),
    ]
    return page(title, crumbs, body, page_id="experiment", charts=needs_charts)


def _header(info: dict[str, Any], store: Store, caller: Caller) -> Markup:
    tags = reads.get_tags(store, caller, info["key"])
    facts = [
        ("key", el("code", {"class": "copy", "title": "experiment key"}, info["key"])),
        ("status", el("span", {"class": f"status status-{info['status']}"}, info["status"])),
        ("user", info["user"]),
        (
            "started",
            el("time", {"datetime": fmt.iso(info["created_at"])}, fmt.when(info["created_at"]) + " UTC"),
        ),
        ("duration", fmt.duration(info["created_at"], info["ended_at"]) or "running"),
    ]
    return el(
        "div",
        {"class": "exp-header"},
        el("h1", None, info.get("name") or info["key"][:12]),
        el(
            "dl",
            {"class": "facts"},
            [el("div", None, el("dt", None, k), el("dd", None, v)) for k, v in facts],
        ),
        widgets.tags(tags) if tags else None,
    )


def _tabs(info: dict[str, Any], current: str, counts: dict[str, int]) -> Markup:
    links = []
    for tab_id, label, count_key in TABS:
        n = counts.get(count_key, 0) if count_key else None
        links.append(
            el(
                "a",
                {
                    "href": urls.experiment(
                        info["workspace"],
                        info["project"],
                        info["key"],
                        tab_id if tab_id != "overview" else None,
                    ),
                    "class": "tab" + (" current" if tab_id == current else "") + (" dim" if n == 0 else ""),
                    "aria-current": "page" if tab_id == current else None,
                    "data-tab": tab_id,
                },
                label,
                el("span", {"class": "badge"}, str(n)) if n else None,
            )
        )
    return el("nav", {"class": "tabs", "aria-label": "experiment tabs"}, links)


Ctx = dict[str, Any]
Rendered = tuple[Any, bool]


def _overview(ctx: Ctx) -> Rendered:
    store, caller, key = ctx["store"], ctx["caller"], ctx["key"]
    metrics = [m for m in reads.metrics_summary(store, caller, key) if not m["name"].startswith("sys.")]
    params = reads.parameters_summary(store, caller, key)
    others = reads.others_summary(store, caller, key)
    metric_table = el(
        "table",
        {"class": "grid compact", "id": "metric-summary"},
        el(
            "thead",
            None,
            el("tr", None, [el("th", {"class": c}, t) for t, c in _SUMMARY_HEAD]),
        ),
        el("tbody", None, [_summary_row(m) for m in metrics]),
    )
    cms = reads.get_items(store, caller, key, "confusion_matrix")
    return (
        el(
            "div",
            {"class": "overview"},
            el(
                "div",
                {"class": "panel"},
                el("h2", None, "Metrics"),
                metric_table if metrics else widgets.empty("No metrics logged."),
            ),
            el(
                "div",
                {"class": "panel"},
                el("h2", None, "Parameters"),
                widgets.kv_table(((p["name"], p["valueCurrent"]) for p in params), "param-summary")
                if params
                else widgets.empty("No parameters logged."),
                el("h2", None, "Others") if others else None,
                widgets.kv_table((o["name"], o["valueCurrent"]) for o in others) if others else None,
            ),
            el(
                "div",
                {"class": "panel panel-wide"},
                el("h2", None, "Confusion matrix"),
                widgets.confusion_matrix(cms[-1]["data"]),
            )
            if cms
            else None,
        ),
        False,
    )


_SUMMARY_HEAD = [
    ("metric", ""),
    ("last", "num"),
    ("min", "num"),
    ("max", "num"),
    ("last step", "num"),
    ("points", "num"),
]


def _summary_row(m: dict[str, Any]) -> Markup:
    return el(
        "tr",
        None,
        el("th", {"scope": "row"}, m["name"]),
        el("td", {"class": "num", "title": fmt.exact(m["valueCurrent"])}, fmt.metric(m["valueCurrent"])),
        el("td", {"class": "num"}, fmt.metric(m["valueMin"])),
        el("td", {"class": "num"}, fmt.metric(m["valueMax"])),
        el("td", {"class": "num"}, str(m["stepCurrent"])),
        el("td", {"class": "num"}, fmt.number(m["count"])),
    )


def _parameters(ctx: Ctx) -> Rendered:
    params = reads.parameters_summary(ctx["store"], ctx["caller"], ctx["key"])
    if not params:
        return widgets.empty("No parameters logged."), False
    return (
        [
            el(
                "input",
                {
                    "type": "search",
                    "class": "row-filter",
                    "data-target": "params-table",
                    "placeholder": "filter parameters…",
                },
            ),
            el(
                "table",
                {"class": "grid compact", "id": "params-table"},
                el(
                    "thead",
                    None,
                    el(
                        "tr",
                        None,
                        el("th", None, "parameter"),
                        el("th", None, "value"),
                        el("th", None, "updated (UTC)"),
                    ),
                ),
                el(
                    "tbody",
                    None,
                    [
                        el(
                            "tr",
                            None,
                            el("th", {"scope": "row"}, p["name"]),
                            el("td", {"class": "value"}, fmt.param(p["valueCurrent"])),
                            el("td", {"class": "muted"}, fmt.when(p["timestampCurrent"])),
                        )
                        for p in params
                    ],
                ),
            ),
        ],
        False,
    )


def _metric_tab(system: bool) -> Callable[[Ctx], Rendered]:
    def render(ctx: Ctx) -> Rendered:
        info = ctx["info"]
        summary = [
            m
            for m in reads.metrics_summary(ctx["store"], ctx["caller"], ctx["key"])
            if m["name"].startswith("sys.") == system
        ]
        if not summary:
            what = "system metrics (CPU, memory, disk, network, GPU)" if system else "metrics"
            return widgets.empty(f"No {what} logged."), False
        series = [m for m in summary if m["count"] > 1]
        single = [m for m in summary if m["count"] <= 1]
        exps = [{"key": info["key"], "name": info.get("name") or info["key"][:12]}]
        state = charts.chart_state(ctx["query"], default_x="time" if system else "step")
        parts: list[Any] = [charts.controls(state, len(series))]
        if series:
            parts.append(charts.grid([m["name"] for m in series]))
        if single:
            parts.append(el("h2", None, "Single values"))
            parts.append(
                el(
                    "table",
                    {"class": "grid compact metric-single"},
                    el("thead", None, el("tr", None, [el("th", {"class": c}, t) for t, c in _SUMMARY_HEAD])),
                    el("tbody", None, [_summary_row(m) for m in single]),
                )
            )
        parts.append(json_script("tm-charts", charts.page_data(exps, [m["name"] for m in series], state)))
        return parts, True

    return render


def _confusion(ctx: Ctx) -> Rendered:
    cms = reads.get_items(ctx["store"], ctx["caller"], ctx["key"], "confusion_matrix")
    if not cms:
        return widgets.empty("No confusion matrix logged."), False
    figures = []
    for cm in cms:
        title = cm["data"].get("title") or cm["name"]
        if cm["step"] is not None:
            title = f"{title} (step {cm['step']})"
        figures.append(widgets.confusion_matrix(cm["data"], title))
    return el("div", {"class": "cm-row"}, figures), False


def _curves(ctx: Ctx) -> Rendered:
    info = ctx["info"]
    items = reads.get_items(ctx["store"], ctx["caller"], ctx["key"], "curve")
    if not items:
        return widgets.empty("No curves logged."), False
    label = info.get("name") or info["key"][:12]
    data = charts.curve_data({info["key"]: items}, [{"key": info["key"], "name": label}])
    return [charts.curve_grid(data), json_script("tm-curves", data)], True


def _assets(ctx: Ctx) -> Rendered:
    store, caller, key, info = ctx["store"], ctx["caller"], ctx["key"], ctx["info"]
    rows = assets.list_assets(store, caller, key)
    tables = reads.get_items(store, caller, key, "table")
    parts: list[Any] = []
    preview_id = ctx["query"].get("asset")
    if preview_id and preview_id.isdigit():
        parts.append(_preview(store, caller, key, int(preview_id)))
    if rows:
        head = ["file", "size", "type", "step", "logged (UTC)", "metadata", ""]
        parts.append(
            el(
                "table",
                {"class": "grid compact", "id": "assets-table"},
                el("thead", None, el("tr", None, [el("th", None, h) for h in head])),
                el(
                    "tbody",
                    None,
                    [
                        el(
                            "tr",
                            None,
                            el(
                                "td",
                                None,
                                el(
                                    "a",
                                    {
                                        "href": urls.experiment(
                                            info["workspace"],
                                            info["project"],
                                            key,
                                            "assets",
                                            asset=a["assetId"],
                                        )
                                    },
                                    a["fileName"],
                                ),
                            ),
                            el("td", {"class": "num"}, fmt.size(a["fileSize"])),
                            el("td", None, a["contentType"] or ""),
                            el("td", {"class": "num"}, "" if a["step"] is None else str(a["step"])),
                            el("td", None, fmt.when(a["createdAt"])),
                            el(
                                "td",
                                {"class": "meta"},
                                "" if a["metadata"] is None else fmt.param(a["metadata"]),
                            ),
                            el(
                                "td",
                                None,
                                el(
                                    "a",
                                    {
                                        "href": urls.asset(key, a["assetId"]),
                                        "download": a["fileName"].rsplit("/", 1)[-1],
                                        "class": "button small",
                                    },
                                    "download",
                                ),
                            ),
                        )
                        for a in rows
                    ],
                ),
            )
        )
    if tables:
        for t in tables:
            parts.append(el("h2", None, t["name"]))
            parts.append(widgets.data_table(t["data"].get("columns", []), t["data"].get("rows", [])))
    if not parts:
        return widgets.empty("No assets or tables logged."), False
    return parts, False


def _preview(store: Store, caller: Caller, key: str, asset_id: int) -> Markup:
    try:
        a, head = ui_reads.asset_preview(store, caller, key, asset_id)
    except NotFound as exc:
        return el("p", {"class": "notice"}, exc.message)
    ctype = a["contentType"] or ""
    if ctype in IMAGE_PREVIEW:
        body = el("img", {"src": urls.asset(key, asset_id), "alt": a["fileName"], "class": "preview-img"})
    elif ctype in TEXT_PREVIEW or ctype.startswith("text/"):
        text = head.decode("utf-8", errors="replace")
        more = a["fileSize"] > len(head)
        body = el(
            "div",
            None,
            el("pre", {"class": "console preview-text"}, text),
            el("p", {"class": "muted"}, f"first {fmt.size(len(head))} of {fmt.size(a['fileSize'])}")
            if more
            else None,
        )
    else:
        body = el("p", {"class": "muted"}, f"No preview for {ctype or 'this type'}; download it instead.")
    return el(
        "div",
        {"class": "preview", "id": "asset-preview"},
        el(
            "h2",
            None,
            a["fileName"],
            " ",
            el(
                "a",
                {
                    "href": urls.asset(key, asset_id),
                    "download": a["fileName"].rsplit("/", 1)[-1],
                    "class": "button small",
                },
                "download",
            ),
        ),
        body,
    )


def _code(ctx: Ctx) -> Rendered:
    items = reads.get_items(ctx["store"], ctx["caller"], ctx["key"], "code")
    if not items:
        return widgets.empty("No code logged."), False
    return [
        el(
            "div",
            {"class": "file"},
            el("h2", {"class": "file-name"}, i["data"].get("file_name") or i["name"]),
            widgets.code_block(i["data"].get("source", "")),
        )
        for i in items
    ], False


def _environment(ctx: Ctx) -> Rendered:
    store, caller, key = ctx["store"], ctx["caller"], ctx["key"]
    env = reads.get_items(store, caller, key, "environment")
    cmd = reads.get_items(store, caller, key, "command")
    pkgs = reads.get_items(store, caller, key, "packages")
    parts: list[Any] = []
    if env:
        parts += [
            el("h2", None, "Environment"),
            # Redacted again at display: experiments recorded before capture-time redaction.
            widgets.kv_table(widgets.flatten(redact_environment(env[-1]["data"])), "environment"),
        ]
    if cmd:
        parts += [
            el("h2", None, "Command"),
            widgets.kv_table(widgets.flatten(redact_environment(cmd[-1]["data"]))),
        ]
    if pkgs:
        packages = pkgs[-1]["data"].get("packages", [])
        parts += [
            el("h2", None, f"Installed packages ({len(packages)})"),
            el(
                "input",
                {
                    "type": "search",
                    "class": "row-filter",
                    "data-target": "packages",
                    "placeholder": "filter packages…",
                },
            ),
            el(
                "table",
                {"class": "grid compact", "id": "packages"},
                el("thead", None, el("tr", None, el("th", None, "package"), el("th", None, "version"))),
                el(
                    "tbody",
                    None,
                    [
                        el(
                            "tr",
                            None,
                            el("td", None, p.get("name", "")),
                            el("td", None, p.get("version", "")),
                        )
                        for p in packages
                    ],
                ),
            ),
        ]
    if not parts:
        return widgets.empty("No environment recorded (Experiment(log_env=False)?)."), False
    return parts, False


def _git(ctx: Ctx) -> Rendered:
    items = reads.get_items(ctx["store"], ctx["caller"], ctx["key"], "git")
    if not items:
        return widgets.empty("No git information (not a git checkout, or Experiment(log_git=False))."), False
    g = redact_git(items[-1]["data"])
    diff = g.pop("diff", None)
    parts: list[Any] = [widgets.kv_table(widgets.flatten(g), "git")]
    if diff:
        parts += [el("h2", None, "Uncommitted changes"), widgets.diff_block(diff)]
    return parts, False


def _stdout(ctx: Ctx) -> Rendered:
    items = reads.get_items(ctx["store"], ctx["caller"], ctx["key"], "stdout")
    if not items:
        return widgets.empty("No output captured."), False
    spans = []
    for i in items:
        stream = i["data"].get("stream", "stdout")
        spans.append(
            el("span", {"class": f"stream-{stream}"}, widgets._ANSI.sub("", i["data"].get("text", "")))
        )
    return el("pre", {"class": "console", "id": "stdout"}, spans), False


def _lineage_data(ctx: Ctx) -> dict[str, Any] | None:
    try:
        from tallymark.service.lineage import get_lineage

        return get_lineage(ctx["store"], ctx["caller"], f"experiment:{ctx['key']}", "both", depth=2)
    except Exception:  # the registry is young: never let it break the experiment page
        return None


def _artifacts(ctx: Ctx) -> Rendered:
    data = _lineage_data(ctx)
    if data is None:
        return widgets.empty("Artifacts arrive with the registry."), False
    me = data["root"]
    used = [e for e in data["edges"] if e["dst"] == me and e["src"].startswith("artifact:")]
    made = [e for e in data["edges"] if e["src"] == me and e["dst"].startswith("artifact:")]
    nodes = {n["ref"]: n for n in data["nodes"]}
    if not used and not made:
        return widgets.empty("This experiment neither consumed nor produced artifacts."), False

    def table(edges: list[dict[str, Any]], end: str) -> Markup:
        rows = []
        for e in edges:
            n = nodes.get(e[end], {})
            rows.append(
                el(
                    "tr",
                    None,
                    el("td", None, n.get("name", e[end])),
                    el("td", None, n.get("version", "")),
                    el("td", None, n.get("artifactType", "")),
                    el("td", None, ", ".join(n.get("aliases", []))),
                    el("td", {"class": "num"}, fmt.size(n.get("size"))),
                )
            )
        head = el("tr", None, [el("th", None, h) for h in ("artifact", "version", "type", "aliases", "size")])
        return el("table", {"class": "grid compact"}, el("thead", None, head), el("tbody", None, rows))

    parts: list[Any] = []
    if used:
        parts += [el("h2", None, "Consumed"), table(used, "src")]
    if made:
        parts += [el("h2", None, "Produced"), table(made, "dst")]
    return parts, False


def _node_link(n: dict[str, Any]) -> Markup:
    """A lineage node, linked to its own page."""
    from tallymark.server.ui.pages_artifacts import artifact_url
    from tallymark.server.ui.pages_models import model_url

    if n["kind"] == "experiment" and "key" in n:
        href = urls.experiment(n["workspace"], n["project"], n["key"], tab="lineage")
    elif n["kind"] == "artifact_version":
        href = artifact_url(n["workspace"], n["name"], n["version"])
    elif n["kind"] == "model_version":
        href = model_url(n["workspace"], n["name"])
    elif n["kind"] == "job" and "name" in n:
        from tallymark.server.ui.pages_jobs import job_url

        href = job_url(n["workspace"], n["name"])
    else:
        return el("span", None, n["label"])
    return el("a", {"href": href}, n["label"])


def _lineage(ctx: Ctx) -> Rendered:
    data = _lineage_data(ctx)
    if data is None:
        return widgets.empty("Lineage arrives with the registry."), False
    me = data["root"]
    nodes = {n["ref"]: n for n in data["nodes"]}
    ups = [nodes[e["src"]] for e in data["edges"] if e["dst"] == me]
    downs = [nodes[e["dst"]] for e in data["edges"] if e["src"] == me]
    if not ups and not downs:
        return widgets.empty(
            "No lineage yet: this experiment consumed and produced nothing registered."
        ), False

    def column(title: str, items: list[dict[str, Any]]) -> Markup:
        return el(
            "div",
            {"class": "lineage-col"},
            el("h3", None, title),
            [el("div", {"class": f"node node-{n['kind']}"}, _node_link(n)) for n in items]
            or el("p", {"class": "muted"}, "none"),
        )

    return (
        el(
            "div",
            {"class": "lineage"},
            column("inputs", ups),
            el("div", {"class": "lineage-arrow"}, "→"),
            column("this experiment", [nodes[me]]),
            el("div", {"class": "lineage-arrow"}, "→"),
            column("outputs", downs),
        ),
        False,
    )


def _jobs(ctx: Ctx) -> Rendered:
    from tallymark.server.ui.pages_jobs import experiment_jobs, jobs_table

    found = experiment_jobs(ctx["store"], ctx["caller"], ctx["jobs"])
    if not found:
        return widgets.empty(
            "No jobs logged into this experiment: log_training_job(job, experiment) links one."
        ), False
    return [el("h2", None, "Jobs"), jobs_table(found)], False


RENDERERS: dict[str, Callable[[Ctx], Rendered]] = {
    "overview": _overview,
    "parameters": _parameters,
    "metrics": _metric_tab(system=False),
    "system": _metric_tab(system=True),
    "confusion": _confusion,
    "curves": _curves,
    "assets": _assets,
    "code": _code,
    "environment": _environment,
    "git": _git,
    "stdout": _stdout,
    "artifacts": _artifacts,
    "jobs": _jobs,
    "lineage": _lineage,
}
