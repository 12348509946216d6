"""``/{workspace}/jobs`` (the workspace's processing and training jobs) and ``/{workspace}/jobs/{name}``
(one job: what ran, its status timeline and attempts, why it failed, its log, its lineage).

Everything shown comes from :mod:`tallymark.service.jobs` and :mod:`tallymark.service.lineage`
(both check the caller); a job's output is user text like any other and goes through the page
builder's escaping (ANSI colour codes removed), never in as HTML. The full stored log is a
``text/plain`` download (:func:`log_text`). The Stop button (``static/js/jobs.js``) posts to the
REST route ``POST /api/v1/workspaces/{ws}/jobs/{name}/stop`` as registry.js posts approvals.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.server.ui import assets, fmt, urls, widgets
from tallymark.server.ui.html import Markup, el, json_script
from tallymark.server.ui.layout import page
from tallymark.service import guard, jobs, ui_reads
from tallymark.service.caller import Caller
from tallymark.service.errors import ServiceError
from tallymark.service.store import Store

PER_PAGE = 50
LIST_LIMIT = 1000  # the newest jobs the list pages through (jobs.list_jobs' own maximum)
TAIL_BYTES = 64 << 10  # of the log shown in the page; the rest is the download
KINDS = ("processing", "training")


def jobs_url(ws: str, **params: Any) -> str:
    return f"{urls.workspace(ws)}/jobs{urls._query(params)}"


def job_url(ws: str, name: str) -> str:
    return f"{urls.workspace(ws)}/jobs/{urls._q(name)}"


def log_url(ws: str, name: str) -> str:
    """The job's whole stored log as text/plain (a UI helper: ``job.get``)."""
    return f"/-/jobs/{urls._q(ws)}/{urls._q(name)}/log"


def jobs_script() -> Markup:
    return el("script", {"type": "module", "src": urls.static("js/jobs.js", assets.version())})


def status_badge(status: str | None, secondary: str | None = None) -> Markup:
    if not status:
        return el("span", {"class": "muted"}, "—")
    return el(
        "span",
        {"class": "job-status"},
        el("span", {"class": f"status status-{status}"}, status),
        el("span", {"class": "muted secondary"}, f" {secondary}")
        if secondary and secondary != status
        else None,
    )


def _elapsed(job: dict[str, Any]) -> str:
    start = job.get("started_at")
    if start is None:
        return ""
    if job.get("ended_at") is None:
        return f"{fmt.duration(start, int(time.time() * 1000))} so far"
    return fmt.duration(start, job["ended_at"])


def _nav(workspace: str, current: str) -> Markup:
    from tallymark.server.ui.layout import workspace_nav

    return workspace_nav(workspace, current)


# ---- the list ------------------------------------------------------------------------------------


def jobs_page(
    store: Store, caller: Caller, workspace: str, status: str, kind: str, page_no: int
) -> HTMLResponse:
    status = status if status in jobs.STATUSES else ""
    kind = kind if kind in KINDS else ""
    rows = jobs.list_jobs(store, caller, workspace, status or None, LIST_LIMIT)
    capped = len(rows) == LIST_LIMIT
    if kind:
        rows = [j for j in rows if j["kind"] == kind]
    pages = max(1, -(-len(rows) // PER_PAGE))
    page_no = min(max(1, page_no), pages)
    shown = rows[(page_no - 1) * PER_PAGE : page_no * PER_PAGE]
    places = ui_reads.experiment_places(store, [j["experiment_key"] for j in shown if j["experiment_key"]])
    from tallymark.server.ui.pages_artifacts import exp_link

    head = el(
        "tr",
        None,
        [
            el("th", {"class": c}, h)
            for h, c in (
                ("job", ""),
                ("kind", ""),
                ("status", ""),
                ("backend", ""),
                ("started (UTC)", ""),
                ("duration", ""),
                ("exit code", "num"),
                ("experiment", ""),
                ("created by", ""),
            )
        ],
    )
    body_rows = [
        el(
            "tr",
            {"data-job": j["name"], "data-status": j["status"]},
            el("td", {"class": "nowrap"}, el("a", {"href": job_url(workspace, j["name"])}, j["name"])),
            el("td", None, el("span", {"class": "tag"}, j["kind"])),
            el("td", {"class": "nowrap"}, status_badge(j["status"], j["secondary_status"])),
            el("td", None, el("code", None, j["backend"])),
            el(
                "td",
                {"class": "nowrap", "title": f"submitted {fmt.when(j['created_at'])} UTC"},
                fmt.when(j["started_at"]) or el("span", {"class": "muted"}, "not yet"),
            ),
            el("td", {"class": "nowrap"}, _elapsed(j)),
            el("td", {"class": "num"}, "" if j["exit_code"] is None else str(j["exit_code"])),
            el("td", None, exp_link(j["experiment_key"], places)),
            el("td", None, j["created_by"]),
        )
        for j in shown
    ]
    hint = "No jobs yet: ProcessingJob(script).run(…) or TrainingJob(entry_point=…).fit(…)."
    if status or kind:
        hint = "No job matches this filter."
    table = (
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid", "id": "jobs"},
                el("thead", None, head),
                el("tbody", None, body_rows),
            ),
        )
        if body_rows
        else widgets.empty(hint)
    )
    filters = el(
        "form",
        {"class": "filters", "method": "get", "action": jobs_url(workspace), "id": "job-filters"},
        el("label", {"for": "job-status"}, "status"),
        el(
            "select",
            {"name": "status", "id": "job-status", "class": "autosubmit"},
            el("option", {"value": ""}, "any"),
            [el("option", {"value": s, "selected": s == status}, s) for s in jobs.STATUSES],
        ),
        el("label", {"for": "job-kind"}, "kind"),
        el(
            "select",
            {"name": "kind", "id": "job-kind", "class": "autosubmit"},
            el("option", {"value": ""}, "any"),
            [el("option", {"value": k, "selected": k == kind}, k) for k in KINDS],
        ),
        el("noscript", None, el("button", {"type": "submit"}, "Filter")),
    )
    first = (page_no - 1) * PER_PAGE + 1 if rows else 0
    pager = el(
        "div",
        {"class": "pager"},
        el(
            "span",
            {"class": "muted", "id": "job-count"},
            f"{first}–{first + len(shown) - 1 if shown else 0} of {len(rows)}"
            + (f" (the newest {LIST_LIMIT})" if capped else ""),
        ),
        el(
            "a",
            {
                "class": "button small",
                "href": jobs_url(workspace, status=status, kind=kind, page=page_no - 1),
            },
            "← newer",
        )
        if page_no > 1
        else None,
        el(
            "a",
            {
                "class": "button small",
                "href": jobs_url(workspace, status=status, kind=kind, page=page_no + 1),
            },
            "older →",
        )
        if page_no < pages
        else None,
    )
    body = [
        el("div", {"class": "title-row"}, el("h1", None, "Jobs"), el("span", {"class": "muted"}, workspace)),
        _nav(workspace, "jobs"),
        el("div", {"class": "toolbar"}, filters, pager),
        table,
    ]
    crumbs = [("workspaces", urls.home()), (workspace, urls.workspace(workspace)), ("jobs", None)]
    return page(f"Jobs · {workspace}", crumbs, body, page_id="jobs")


# ---- one job -------------------------------------------------------------------------------------


def job_page(store: Store, caller: Caller, workspace: str, name: str) -> HTMLResponse:
    job = jobs.get_job(store, caller, workspace, name)
    graph = _graph(store, caller, name)
    log = _tail(store, caller, workspace, name)
    running = job["status"] not in jobs.FINAL
    try:
        guard.allow(caller, "job.stop", workspace)
        may_stop = True
    except ServiceError:
        may_stop = False
    spec = job.get("spec") or {}
    title = el(
        "div",
        {"class": "title-row"},
        el("h1", None, name),
        el("span", {"class": "tag"}, f"{job['kind']} job"),
        status_badge(job["status"], job["secondary_status"]),
        el(
            "button",
            {
                "type": "button",
                "class": "danger",
                "id": "stop-job",
                "data-url": f"/api/v1/workspaces/{urls._q(workspace)}/jobs/{urls._q(name)}/stop",
                "disabled": job["stop_requested_at"] is not None,
            },
            "Stop requested" if job["stop_requested_at"] is not None else "Stop",
        )
        if running and may_stop
        else None,
    )
    body = [
        title,
        el(
            "div",
            {"id": "job-body"},
            el("p", {"class": "job-message", "id": "job-message", "role": "status"}),
            _failure(job),
            _facts(job, store),
            el(
                "div",
                {"class": "job-columns"},
                el(
                    "div",
                    {"class": "job-main"},
                    _log_section(workspace, name, job, log),
                    _spec(workspace, spec),
                ),
                el(
                    "div",
                    {"class": "job-side"},
                    _timeline(job),
                    _lineage(workspace, name, graph),
                ),
            ),
            _attempts(job),
        ),
        json_script(
            "tm-job",
            {
                "workspace": workspace,
                "name": name,
                "status": job["status"],
                "running": running,
                "logNext": log["next"],
                "api": f"/api/v1/workspaces/{urls._q(workspace)}/jobs/{urls._q(name)}",
            },
        ),
        jobs_script(),
    ]
    crumbs = [
        ("workspaces", urls.home()),
        (workspace, urls.workspace(workspace)),
        ("jobs", jobs_url(workspace)),
        (name, None),
    ]
    return page(f"{name} · jobs", crumbs, body, page_id="job")


def _graph(store: Store, caller: Caller, name: str) -> dict[str, Any] | None:
    from tallymark.service.lineage import get_lineage

    try:
        return get_lineage(store, caller, f"job:{name}", "both", depth=1)
    except ServiceError:
        return None


def _read_all(store: Store, caller: Caller, workspace: str, name: str) -> tuple[bytes, int, int]:
    """The whole stored log (the store keeps at most ``job_log_max_bytes``, with a marker where
    that limit left bytes out), the last chunk read and the bytes left out."""
    parts: list[bytes] = []
    after, dropped = -1, 0
    for _ in range(10_000):  # 8 MiB a read: a capped log ends long before
        got = jobs.job_logs_read(store, caller, workspace, name, after)
        parts.append(got["data"])
        dropped = got["dropped"]
        if got["next"] == after:
            break
        after = got["next"]
    return b"".join(parts), after, dropped


def _tail(store: Store, caller: Caller, workspace: str, name: str) -> dict[str, Any]:
    """The stored log's last :data:`TAIL_BYTES`, from a line start, and the chunk to follow from."""
    data, after, dropped = _read_all(store, caller, workspace, name)
    cut = len(data) > TAIL_BYTES
    if cut:
        data = data[-TAIL_BYTES:]
        nl = data.find(b"\n", 0, 4096)
        data = data[nl + 1 :] if nl >= 0 else data
    return {"text": data.decode("utf-8", errors="replace"), "cut": cut, "next": after, "dropped": dropped}


def log_text(store: Store, caller: Caller, workspace: str, name: str) -> bytes:
    """The job's whole stored log, for the download."""
    return _read_all(store, caller, workspace, name)[0]


def _failure(job: dict[str, Any]) -> Markup | None:
    if job["status"] in ("InProgress", "Completed") and not job.get("failure_reason"):
        return None
    reason = job.get("failure_reason")
    if not reason and job["status"] == "Stopped":
        return el("div", {"class": "job-alert stopped", "id": "failure"}, "Stopped on request.")
    if not reason:
        return None
    return el(
        "div",
        {"class": f"job-alert status-{job['status']}", "id": "failure", "role": "alert"},
        el(
            "strong",
            None,
            f"{job['status']}"
            + (f" with exit code {job['exit_code']}" if job.get("exit_code") is not None else "")
            + ": ",
        ),
        el("pre", {"class": "failure-reason"}, widgets._ANSI.sub("", reason)),
    )


def _facts(job: dict[str, Any], store: Store) -> Markup:
    from tallymark.server.ui.pages_artifacts import exp_link

    places = ui_reads.experiment_places(store, [job["experiment_key"]] if job["experiment_key"] else [])
    facts: list[tuple[str, Any]] = [
        ("backend", el("code", None, job["backend"])),
        ("created by", job["created_by"]),
        ("started", fmt.when(job["started_at"]) + " UTC" if job["started_at"] else "not yet"),
        ("duration", _elapsed(job) or "—"),
        ("exit code", "—" if job["exit_code"] is None else el("code", {"id": "exit-code"}, job["exit_code"])),
        ("attempt", f"{job['attempt']} of {job['max_attempts']}"),
    ]
    if job.get("host"):
        facts.append(("host", job["host"] + (f" (pid {job['pid']})" if job.get("pid") else "")))
    if job["experiment_key"]:
        facts.append(("experiment", exp_link(job["experiment_key"], places)))
    if job.get("model_data"):
        facts.append(("model data", el("code", {"class": "copy"}, job["model_data"])))
    return el(
        "dl",
        {"class": "facts", "id": "job-facts"},
        [el("div", None, el("dt", None, k), el("dd", None, v)) for k, v in facts],
    )


def _log_section(workspace: str, name: str, job: dict[str, Any], log: dict[str, Any]) -> Markup:
    size = job.get("log_bytes") or 0
    note = []
    if log["cut"]:
        note.append(f"the last {fmt.size(TAIL_BYTES)} of {fmt.size(size)}")
    if log["dropped"]:
        note.append(f"{fmt.size(log['dropped'])} left out of the middle by the log limit")
    return el(
        "section",
        {"class": "block", "id": "log-section"},
        el(
            "h2",
            None,
            "Log",
            " ",
            el(
                "a",
                {"class": "button small", "href": log_url(workspace, name), "download": f"{name}.log"},
                "full log",
            )
            if size
            else None,
            el("span", {"class": "muted log-note"}, " · ".join(note)) if note else None,
            el("span", {"class": "muted live", "id": "log-live", "hidden": True}, "following…"),
        ),
        widgets.text_block(log["text"], "job-log")
        if log["text"]
        else el("pre", {"class": "console empty-log", "id": "job-log"}, "(no output yet)"),
    )


def _timeline(job: dict[str, Any]) -> Markup:
    steps: list[tuple[str, int | None, str]] = [
        ("created", job["created_at"], f"by {job['created_by']}"),
        ("started", job["started_at"], job.get("host") or ""),
    ]
    if job.get("stop_requested_at"):
        steps.append(("stop requested", job["stop_requested_at"], ""))
    end_label = job["status"].lower() if job["status"] in jobs.FINAL else "ended"
    steps.append((end_label, job["ended_at"], _elapsed(job) if job["ended_at"] else ""))
    items = [
        el(
            "li",
            {"class": "done" if at else "pending", "data-step": label},
            el("span", {"class": "dot"}),
            el("span", {"class": "step"}, label),
            el("time", {"datetime": fmt.iso(at)}, fmt.when(at) + " UTC")
            if at
            else el("span", {"class": "muted"}, "—"),
            el("span", {"class": "muted"}, f" {extra}") if extra else None,
        )
        for label, at, extra in steps
    ]
    return el(
        "section",
        {"class": "block", "id": "timeline-section"},
        el("h2", None, "Timeline"),
        el("ol", {"class": "timeline", "id": "timeline"}, items),
    )


def _node_href(n: dict[str, Any]) -> str | None:
    from tallymark.server.ui.pages_artifacts import artifact_url
    from tallymark.server.ui.pages_models import model_url

    if n["kind"] == "experiment" and "key" in n:
        return urls.experiment(n["workspace"], n["project"], n["key"])
    if n["kind"] == "artifact_version" and "name" in n:
        return artifact_url(n["workspace"], n["name"], n["version"])
    if n["kind"] == "model_version" and "name" in n:
        return model_url(n["workspace"], n["name"])
    if n["kind"] == "job" and "name" in n:
        return job_url(n["workspace"], n["name"])
    return None


def node_card(n: dict[str, Any], relation: str | None = None) -> Markup:
    href = _node_href(n)
    label = n["label"]
    return el(
        "div",
        {"class": f"node node-{n['kind']}", "data-ref": n["ref"]},
        el("a", {"href": href}, label) if href else el("span", None, label),
        el("span", {"class": "muted relation"}, f" {relation}") if relation else None,
    )


def _lineage(workspace: str, name: str, graph: dict[str, Any] | None) -> Markup:
    parts: list[Any] = [el("h2", None, "Lineage")]
    if graph is None:
        parts.append(widgets.empty("No lineage."))
        return el("section", {"class": "block", "id": "job-lineage"}, parts)
    me = graph["root"]
    nodes = {n["ref"]: n for n in graph["nodes"]}
    ins = [(nodes[e["src"]], e["relation"]) for e in graph["edges"] if e["dst"] == me]
    outs = [(nodes[e["dst"]], e["relation"]) for e in graph["edges"] if e["src"] == me]

    def column(title: str, items: list[tuple[dict[str, Any], str]], empty: str) -> Markup:
        return el(
            "div",
            {"class": "lineage-col"},
            el("h3", None, title),
            [node_card(n, rel) for n, rel in items] or el("p", {"class": "muted"}, empty),
        )

    parts.append(
        el(
            "div",
            {"class": "lineage vertical"},
            column("inputs", ins, "no artifact inputs"),
            el("div", {"class": "lineage-arrow"}, "↓"),
            column("this job", [(nodes[me], "")], ""),
            el("div", {"class": "lineage-arrow"}, "↓"),
            column("outputs", outs, "nothing recorded yet"),
        )
    )
    return el("section", {"class": "block", "id": "job-lineage"}, parts)


def _uri_cell(uri: str) -> Markup:
    """A URI as text; an ``artifact://WS/NAME:VERSION`` input links to that artifact's page."""
    from tallymark.server.ui.pages_artifacts import artifact_url

    if uri.startswith("artifact://"):
        from tallymark.jobs.uris import parse_artifact

        try:  # the job API's own parser, so a sub-path (…:2.0.0/train) links to its version
            ref = parse_artifact(uri)
        except ValueError:
            return el("span", {"class": "value uri"}, uri)
        return el("a", {"href": artifact_url(ref.workspace, ref.name, ref.version), "class": "value"}, uri)
    return el("span", {"class": "value uri"}, uri)


def _spec(workspace: str, spec: dict[str, Any]) -> Markup:
    what: list[tuple[str, Any]] = []
    if spec.get("algorithm"):
        what.append(("algorithm", el("code", None, f"built-in {spec['algorithm']}")))
    if spec.get("script"):
        what.append(("script", el("code", None, spec["script"])))
    if spec.get("source_dir"):
        what.append(("source dir", el("code", None, spec["source_dir"])))
    if spec.get("command"):
        what.append(("command", el("code", None, " ".join(spec["command"]))))
    if spec.get("arguments"):
        what.append(("arguments", el("code", None, " ".join(spec["arguments"]))))
    if spec.get("output_path"):
        what.append(("output path", el("code", None, spec["output_path"])))
    if spec.get("project"):
        what.append(("project", spec["project"]))
    limits = [
        ("max run", f"{spec.get('max_run', '')} s"),
        ("stop grace", f"{spec.get('stop_grace', '')} s"),
        ("retries", spec.get("retries", 0)),
    ]
    inputs = spec.get("inputs") or []
    outputs = spec.get("outputs") or []
    in_rows = [
        el(
            "tr",
            {"data-channel": c.get("name")},
            el("th", {"scope": "row"}, c.get("name", "")),
            el("td", None, _uri_cell(str(c.get("uri", "")))),
            el("td", None, el("code", None, c["destination"]) if c.get("destination") else ""),
            el("td", None, c.get("content_type") or ""),
        )
        for c in inputs
    ]
    out_rows = [
        el(
            "tr",
            {"data-output": o.get("name")},
            el("th", {"scope": "row"}, o.get("name", "")),
            el("td", None, el("code", None, o.get("source", ""))),
            el("td", None, _uri_cell(str(o.get("destination", "")))),
        )
        for o in outputs
    ]
    in_word = "Channels" if spec.get("kind") == "training" else "Inputs"

    def table(tid: str, heads: tuple[str, ...], rows: list[Markup]) -> Markup:
        return el(
            "table",
            {"class": "grid compact", "id": tid},
            el("thead", None, el("tr", None, [el("th", None, h) for h in heads])),
            el("tbody", None, rows),
        )

    hps = spec.get("hyperparameters") or {}
    resources = spec.get("resources") or {}
    env = spec.get("environment") or {}
    return el(
        "section",
        {"class": "block", "id": "spec-section"},
        el("h2", None, "Specification"),
        el(
            "div",
            {"class": "overview"},
            el(
                "div",
                {"class": "panel"},
                el("h3", None, "What runs"),
                widgets.kv_table(what, "job-what"),
                el("h3", None, "Limits"),
                widgets.kv_table(limits, "job-limits"),
                el("h3", None, "Resources") if resources else None,
                widgets.kv_table(widgets.flatten(resources), "job-resources") if resources else None,
            ),
            el(
                "div",
                {"class": "panel"},
                el("h3", None, "Hyperparameters", el("span", {"class": "badge"}, len(hps))),
                widgets.kv_table(sorted(hps.items()), "job-hyperparameters")
                if hps
                else widgets.empty("No hyperparameters."),
                el("h3", None, "Environment") if env else None,
                widgets.kv_table(sorted(env.items()), "job-environment") if env else None,
            ),
            el(
                "div",
                {"class": "panel panel-wide"},
                el("h3", None, in_word, el("span", {"class": "badge"}, len(inputs))),
                table("job-inputs", ("name", "URI", "destination", "content type"), in_rows)
                if in_rows
                else widgets.empty(f"No {in_word.lower()}."),
                el("h3", None, "Outputs", el("span", {"class": "badge"}, len(outputs))) if outputs else None,
                table("job-outputs", ("name", "source", "destination"), out_rows) if out_rows else None,
            ),
        ),
    )


def _attempts(job: dict[str, Any]) -> Markup | None:
    attempts = job.get("attempts") or []
    if not attempts:
        return None
    rows = [
        el(
            "tr",
            {"data-attempt": a.get("attempt")},
            el("td", {"class": "num"}, str(a.get("attempt", ""))),
            el("td", None, status_badge(a.get("status"))),
            el("td", {"class": "num"}, "" if a.get("exit_code") is None else str(a["exit_code"])),
            el("td", {"class": "nowrap"}, fmt.when(a.get("started_at"))),
            el("td", {"class": "nowrap"}, fmt.duration(a.get("started_at"), a.get("ended_at"))),
            el("td", None, a.get("host") or ""),
            el("td", {"class": "comment"}, a.get("failure_reason") or ""),
        )
        for a in attempts
    ]
    heads = ("attempt", "status", "exit code", "started (UTC)", "duration", "host", "failure reason")
    return el(
        "section",
        {"class": "block", "id": "attempts-section"},
        el("h2", None, "Attempts", el("span", {"class": "badge"}, len(attempts))),
        el(
            "div",
            {"class": "table-wrap"},
            el(
                "table",
                {"class": "grid compact", "id": "attempts"},
                el("thead", None, el("tr", None, [el("th", None, h) for h in heads])),
                el("tbody", None, rows),
            ),
        ),
    )


def experiment_job_nodes(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    """The lineage nodes of the jobs an experiment logged (``job -trained-> experiment``) that the
    caller may see: cheap enough for the tab's count on every experiment page."""
    from tallymark.service.lineage import get_lineage

    try:
        graph = get_lineage(store, caller, f"experiment:{key}", "upstream", depth=1)
    except ServiceError:
        return []
    return [n for n in graph["nodes"] if n["kind"] == "job" and "name" in n]


def experiment_jobs(store: Store, caller: Caller, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those jobs as :func:`jobs.get_job` answers, newest first (the Jobs tab)."""
    out = []
    for n in nodes:
        try:
            out.append(jobs.get_job(store, caller, n["workspace"], n["name"]))
        except ServiceError:
            continue
    out.sort(key=lambda j: j["created_at"], reverse=True)
    return out


def jobs_table(jobs_: list[dict[str, Any]], table_id: str = "experiment-jobs") -> Markup:
    """A compact table of jobs (the experiment page's Jobs tab)."""
    head = el(
        "tr",
        None,
        [
            el("th", None, h)
            for h in ("job", "kind", "status", "backend", "started (UTC)", "duration", "exit code")
        ],
    )
    rows = [
        el(
            "tr",
            {"data-job": j["name"]},
            el("td", None, el("a", {"href": job_url(j["workspace"], j["name"])}, j["name"])),
            el("td", None, el("span", {"class": "tag"}, j["kind"])),
            el("td", {"class": "nowrap"}, status_badge(j["status"], j["secondary_status"])),
            el("td", None, el("code", None, j["backend"])),
            el("td", {"class": "nowrap"}, fmt.when(j["started_at"])),
            el("td", {"class": "nowrap"}, _elapsed(j)),
            el("td", {"class": "num"}, "" if j["exit_code"] is None else str(j["exit_code"])),
        )
        for j in jobs_
    ]
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid compact", "id": table_id},
            el("thead", None, head),
            el("tbody", None, rows),
        ),
    )
