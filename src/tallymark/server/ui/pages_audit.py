"""``/-/admin/audit``: the audit log for a server admin (404 to anyone else).

* A banner with :func:`tallymark.service.audit.verify`'s answer: green "intact" (entries, head hash,
  signed checkpoints that match) or red "NOT intact" naming the problem and the first bad entry,
  with a link to it.
* Entries per day over the last 30 days, as a bar chart drawn here in SVG (no script needed).
* The entries, newest first: seq, time, actor, action, object, workspace, request id, hash prefix;
  filters (actor, object, action, since) as a GET form, so a filtered view is a shareable URL; paging
  with ``before`` (the seq below which the next page starts).
* "Sign checkpoint now": ``POST /api/v1/admin/audit/checkpoint`` from ``static/js/admin.js``.

Every value here is user-controlled text (names, refs, actions): all of it goes through
:func:`tallymark.server.ui.html.el`, which escapes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep
from tallymark.server.ui import fmt
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import page
from tallymark.server.ui.pages_admin import admin_script, admin_tabs
from tallymark.service import auditlog
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid
from tallymark.service.store import Store

__all__ = ["audit_page", "router"]

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100
CHART_DAYS = 30
_FILTERS = ("actor", "object", "action", "since")


def _url(filters: dict[str, str], **extra: Any) -> str:
    from urllib.parse import urlencode

    params = {k: v for k, v in {**filters, **extra}.items() if v not in (None, "")}
    return "/-/admin/audit" + ("?" + urlencode(params) if params else "")


def _banner(report: dict[str, Any]) -> Markup:
    if report["ok"]:
        last = report["lastCheckpoint"]
        cps = report["checkpointsMatched"]
        return el(
            "div",
            {"class": "verify-banner ok", "id": "verify-banner", "data-ok": "true"},
            el("strong", None, "✓ Audit log intact"),
            f" — {fmt.number(report['size'])} entries, head ",
            el("code", {"title": report["head"]}, report["head"][:16] + "…"),
            f", {cps} signed checkpoint{'s match' if cps != 1 else ' matches'}",
            f" (newest covers {fmt.number(last['size'])} entries, signed {fmt.when(last['createdAt'])} UTC)."
            if last
            else " (none signed yet).",
        )
    bad = report["firstBad"]
    return el(
        "div",
        {"class": "verify-banner broken", "id": "verify-banner", "data-ok": "false"},
        el("strong", None, "✗ Audit log NOT intact"),
        " — ",
        el("span", {"class": "problem"}, (report["problem"] or "").rstrip(".") + "."),
        el(
            "span",
            {"class": "first-bad"},
            f" First bad entry: #{bad} (",
            el("a", {"href": _url({}, before=bad + 1)}, "show it"),
            ").",
        )
        if bad
        else None,
    )


def _chart(days: list[dict[str, Any]]) -> Markup:
    """Entries per day: one bar per UTC day, the count in each bar's tooltip."""
    w, h, pad_l, pad_b, pad_t = 720, 130, 36, 20, 8
    top = max([d["count"] for d in days] + [1])
    bw = (w - pad_l) / len(days)
    bars = []
    for i, d in enumerate(days):
        bh = (h - pad_b - pad_t) * d["count"] / top
        x = pad_l + i * bw
        label = f"{fmt.when(d['day'])[:10]}: {d['count']} entr{'y' if d['count'] == 1 else 'ies'}"
        bars.append(
            el(
                "rect",
                {
                    "class": "bar" if d["count"] else "bar zero",
                    "x": f"{x + 1:.1f}",
                    "y": f"{h - pad_b - bh:.1f}",
                    "width": f"{max(bw - 2, 1):.1f}",
                    "height": f"{max(bh, 1 if d['count'] else 0):.1f}",
                    "data-day": fmt.when(d["day"])[:10],
                    "data-count": d["count"],
                },
                el("title", None, label),
            )
        )
    axis = [
        el("text", {"x": pad_l - 6, "y": pad_t + 8, "class": "tick", "text-anchor": "end"}, fmt.number(top)),
        el("text", {"x": pad_l - 6, "y": h - pad_b, "class": "tick", "text-anchor": "end"}, "0"),
        el("line", {"x1": pad_l, "x2": w, "y1": h - pad_b + 0.5, "y2": h - pad_b + 0.5, "class": "axis"}),
        el("text", {"x": pad_l, "y": h - 4, "class": "tick"}, fmt.when(days[0]["day"])[:10]),
        el(
            "text",
            {"x": w, "y": h - 4, "class": "tick", "text-anchor": "end"},
            fmt.when(days[-1]["day"])[:10],
        ),
    ]
    total = sum(d["count"] for d in days)
    return el(
        "figure",
        {"class": "audit-chart", "id": "audit-chart"},
        el("figcaption", None, f"Entries per day, last {len(days)} days (UTC): {fmt.number(total)}"),
        el(
            "svg",
            {
                "viewBox": f"0 0 {w} {h}",
                "role": "img",
                "aria-label": f"audit entries per day over the last {len(days)} days",
                "xmlns": "http://www.w3.org/2000/svg",
            },
            bars,
            axis,
        ),
    )


def _filters_form(filters: dict[str, str], limit: int) -> Markup:
    def box(name: str, label: str, placeholder: str) -> Markup:
        return el(
            "label",
            {"class": "field"},
            el("span", None, label),
            el(
                "input",
                {
                    "type": "search",
                    "name": name,
                    "value": filters.get(name, ""),
                    "placeholder": placeholder,
                    "maxlength": 40 if name == "since" else 500,
                },
            ),
        )

    return el(
        "form",
        {"class": "audit-filters", "method": "get", "action": "/-/admin/audit", "id": "audit-filters"},
        box("actor", "actor", "user name"),
        box("object", "object", "risk/fraud-xgb[:1.0.0]"),
        box("action", "action", "api_key or api_key.create"),
        box("since", "since", "2026-12-01 (UTC)"),
        el("input", {"type": "hidden", "name": "limit", "value": limit}) if limit != PAGE_SIZE else None,
        el("button", {"type": "submit", "class": "primary"}, "Filter"),
        el("a", {"href": "/-/admin/audit", "class": "button"}, "Clear") if any(filters.values()) else None,
    )


def _entries_table(rows: list[dict[str, Any]], first_bad: int | None = None) -> Markup:
    if not rows:
        return el("p", {"class": "empty-note", "id": "audit-empty"}, "No entries match.")
    cols = ("seq", "time (UTC)", "actor", "action", "object", "workspace", "request id", "hash")
    head = el("tr", None, [el("th", {"class": "num"} if c == "seq" else None, c) for c in cols])
    body = [
        el(
            "tr",
            {"data-seq": e["seq"], "class": "bad" if e["seq"] == first_bad else None},
            el("td", {"class": "num"}, str(e["seq"])),
            el("td", {"class": "nowrap", "title": fmt.iso(e["time"])}, fmt.when(e["time"])),
            el("td", {"class": "name"}, e["actor"]),
            el("td", None, el("code", None, e["action"])),
            el(
                "td",
                {"class": "value"},
                el("span", {"class": "muted"}, e["objectKind"] + " "),
                e["objectRef"],
            ),
            el("td", None, e["workspace"] or ""),
            el("td", None, el("code", {"class": "muted"}, e["requestId"]) if e["requestId"] else ""),
            el("td", None, el("code", {"title": e["hash"], "class": "hash"}, e["hash"][:12])),
        )
        for e in rows
    ]
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid compact", "id": "audit-entries"},
            el("thead", None, head),
            el("tbody", None, body),
        ),
    )


def audit_body(
    store: Store, caller: Caller, filters: dict[str, str], before: int | None, limit: int
) -> Markup:
    """``#audit-body``: banner, chart, filters, entries and pager (swapped by admin.js after a checkpoint)."""
    report = auditlog.verify_report(store, caller)
    try:
        since_ms = auditlog.parse_since(filters.get("since"))
        problem = None
    except Invalid as exc:
        since_ms, problem = None, exc.message
    listing = auditlog.list_entries(
        store,
        caller,
        actor=filters.get("actor") or None,
        object_ref=filters.get("object") or None,
        since_ms=since_ms,
        before=before,
        limit=limit,
        action=filters.get("action") or None,
    )
    rows = listing["entries"]
    older = listing["nextBefore"]
    n = len(rows)
    shown = (
        f"{n} entr{'y' if n == 1 else 'ies'} shown, newest first (#{rows[0]['seq']} … #{rows[-1]['seq']})"
        if rows
        else "nothing shown"
    ) + f"; the log has {fmt.number(listing['total'])}"
    pager = el(
        "div",
        {"class": "pager"},
        el("span", {"class": "muted", "id": "audit-shown"}, shown),
        el(
            "a",
            {"class": "button small", "href": _url(filters, limit=limit if limit != PAGE_SIZE else None)},
            "Newest",
        )
        if before is not None
        else None,
        el(
            "a",
            {
                "class": "button small",
                "id": "audit-older",
                "href": _url(filters, before=older, limit=limit if limit != PAGE_SIZE else None),
            },
            "Older →",
        )
        if older is not None
        else None,
    )
    return el(
        "div",
        {"id": "audit-body"},
        _banner(report),
        el(
            "div",
            {"class": "audit-actions"},
            el(
                "button",
                {"type": "button", "id": "sign-checkpoint", "class": "primary"},
                "Sign checkpoint now",
            ),
            el(
                "span",
                {"class": "muted"},
                "signs the log's size and head hash with the server's key (also: ",
                el("code", None, "tallymark audit checkpoint"),
                ")",
            ),
        ),
        _chart(auditlog.entries_per_day(store, caller, CHART_DAYS)),
        _filters_form(filters, limit),
        el("p", {"class": "error-text", "id": "audit-filter-error"}, problem) if problem else None,
        pager,
        _entries_table(rows, report["firstBad"]),
        pager if len(rows) > 20 else None,
    )


def audit_page(
    store: Store, caller: Caller, filters: dict[str, str], before: int | None = None, limit: int = PAGE_SIZE
) -> HTMLResponse:
    body = [
        el("h1", None, "Audit log"),
        admin_tabs("audit"),
        el("p", {"id": "audit-status", "class": "admin-status", "role": "status", "hidden": True}),
        audit_body(store, caller, filters, before, limit),
        admin_script(),
    ]
    return page("Audit log", [("admin", "/-/admin"), ("audit", None)], body, page_id="audit")


Text = Annotated[str, Query(max_length=500)]


@router.get("/-/admin/audit", dependencies=[need("ui.admin")])
def audit(
    request: Request,
    caller: CallerDep,
    actor: Text = "",
    object: Text = "",  # noqa: A002 - the filter's name, as in `tallymark audit log --object`
    action: Text = "",
    since: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=auditlog.MAX_LIMIT)] = PAGE_SIZE,
) -> HTMLResponse:
    filters = {
        "actor": actor.strip(),
        "object": object.strip(),
        "action": action.strip(),
        "since": since.strip(),
    }
    return audit_page(request.app.state.store, caller, filters, before, limit)
