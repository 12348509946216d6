"""``/{workspace}/{project}``: the experiment table.

Everything the view shows is in its URL: ``?q=`` (query language), ``?sort=`` (a field, ``-`` for
descending), ``?page=``/``?per_page=`` and ``?cols=`` (fields, comma-separated). It is rendered on
the server (one page of rows, so 10 k experiments cost what 50 do); the scripts only add comfort
(selection count, column search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark.query import QueryError, parse
from tallymark.server.ui import fmt, urls
from tallymark.server.ui.columns import (
    ATTRIBUTE_COLUMNS,
    TEXT_FIRST,
    Column,
    cell,
    default_columns,
    format_columns,
    parse_columns,
    split_fields,
    with_query_fields,
)
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import page
from tallymark.service import reads, ui_reads
from tallymark.service.caller import Caller
from tallymark.service.errors import Invalid
from tallymark.service.store import Store

PER_PAGE_CHOICES = (25, 50, 100, 200)
EXAMPLE_QUERY = "metrics.validation_auc > 0.9 and params.learning_rate = 0.15"


@dataclass(frozen=True)
class TableState:
    workspace: str
    project: str
    q: str = ""
    sort: str = ""
    page: int = 1
    per_page: int = 50
    cols: str = ""

    def url(self, **changes: Any) -> str:
        s = replace(self, **changes)
        return urls.project(
            s.workspace,
            s.project,
            q=s.q,
            sort=s.sort,
            page=s.page if s.page != 1 else None,
            per_page=s.per_page if s.per_page != 50 else None,
            cols=s.cols,
        )


def table_page(store: Store, caller: Caller, state: TableState) -> HTMLResponse:
    query_error: QueryError | None = None
    sort_error: str | None = None
    node = None
    try:
        node = parse(state.q)
    except QueryError as exc:
        query_error = exc
    result: dict[str, Any] = {"experiments": [], "total": 0}
    sort = state.sort or "-created_at"
    if query_error is None:
        try:
            result = reads.query_experiments(
                store, caller, state.workspace, state.project, state.q, sort, state.page, state.per_page
            )
        except Invalid as exc:
            if not exc.message.startswith("cannot sort"):  # pragma: no cover - parse() caught it
                raise
            sort_error, sort = exc.message, "-created_at"
            result = reads.query_experiments(
                store, caller, state.workspace, state.project, state.q, sort, state.page, state.per_page
            )
        last_page = max(1, math.ceil(result["total"] / state.per_page))
        if state.page > last_page:
            state = replace(state, page=last_page)
            result = reads.query_experiments(
                store, caller, state.workspace, state.project, state.q, sort, state.page, state.per_page
            )
    rows = result["experiments"]
    # The picker starts with the names on this page; the script loads the project's full list
    # (/-/columns/…) when it is opened, so a 10 k-row project costs no extra DISTINCT scans here.
    columns_all = {
        "params": sorted({n for r in rows for n in r.get("params", {})}),
        "metrics": sorted({n for r in rows for n in r.get("metrics", {})}),
        "others": [],
    }
    bad_cols: list[str] = []
    if state.cols:
        cols, bad_cols = parse_columns(split_fields(state.cols))
    else:
        cols = default_columns(rows, columns_all["metrics"])
    cols = with_query_fields(cols, node, state.sort.lstrip("-+") if state.sort else None)
    if any(c.kind == "others" for c in cols) and rows:
        others = ui_reads.experiments_by_keys(store, caller, [r["key"] for r in rows])
        for r, o in zip(rows, others, strict=True):
            r["others"] = o["others"]
    body = [
        el(
            "div",
            {"class": "title-row"},
            el("h1", None, state.project),
            el("span", {"class": "muted", "id": "total"}, _count_text(result["total"], state)),
        ),
        _filter_form(state, query_error),
        el("p", {"class": "notice"}, sort_error) if sort_error else None,
        el("p", {"class": "notice"}, "Unknown columns ignored: " + ", ".join(bad_cols)) if bad_cols else None,
        _toolbar(state, cols, columns_all),
        _table(state, rows, cols, sort),
        _pager(state, result["total"]),
    ]
    crumbs = [
        ("workspaces", urls.home()),
        (state.workspace, urls.workspace(state.workspace)),
        (state.project, None),
    ]
    return page(state.project, crumbs, body, page_id="table")


def _count_text(total: int, state: TableState) -> str:
    noun = "experiment" if total == 1 else "experiments"
    return f"{fmt.number(total)} {noun}" + (" match" if state.q.strip() else "")


def _hidden(name: str, value: Any) -> Markup | None:
    if value in (None, ""):
        return None
    return el("input", {"type": "hidden", "name": name, "value": value})


def _filter_form(state: TableState, error: QueryError | None) -> Markup:
    field = el(
        "input",
        {
            "type": "search",
            "name": "q",
            "id": "q",
            "value": state.q,
            "class": "query" + (" invalid" if error else ""),
            "placeholder": EXAMPLE_QUERY,
            "spellcheck": "false",
            "autocomplete": "off",
            "aria-invalid": "true" if error else None,
            "aria-describedby": "query-error" if error else None,
            "data-column": error.column if error else None,
        },
    )
    form = el(
        "form",
        {"class": "filter", "method": "get", "action": urls.project(state.workspace, state.project)},
        el("label", {"for": "q", "class": "sr-only"}, "Filter with the query language"),
        field,
        _hidden("sort", state.sort),
        _hidden("cols", state.cols),
        _hidden("per_page", state.per_page if state.per_page != 50 else None),
        el("button", {"type": "submit", "class": "primary"}, "Filter"),
        el("a", {"class": "button", "href": state.url(q="", page=1)}, "Clear") if state.q else None,
        _query_help(),
    )
    parts = [form]
    if error is not None:
        parts.append(
            el(
                "div",
                {"class": "query-error", "id": "query-error", "role": "alert", "data-column": error.column},
                el("strong", None, error.message),
                el("span", {"class": "where"}, f" at column {error.column}"),
                el("pre", None, error.excerpt()),
            )
        )
    return el("div", {"class": "filter-block"}, parts)


def _query_help() -> Markup:
    examples = [
        ("metrics.validation_auc > 0.95", "last logged value of a metric"),
        ("params.learning_rate = 0.15 and tags = 'baseline'", "parameters and tags"),
        ("name ~ 'xgb' or not metrics.test_f1 exists", "substring, missing values"),
        ("created_at >= '2024-05-01'", "dates (UTC)"),
    ]
    return el(
        "details",
        {"class": "help"},
        el("summary", None, "Query help"),
        el(
            "div",
            {"class": "popover"},
            el(
                "table",
                {"class": "plain"},
                [
                    el("tr", None, el("td", None, el("code", None, q)), el("td", None, what))
                    for q, what in examples
                ],
            ),
            el(
                "p",
                None,
                "Operators: = != < <= > >= ~ (contains) !~ exists; combine with and, or, not, ( ). "
                "Fields: metrics.X params.X others.X tags name key status user created_at.",
            ),
        ),
    )


def _toolbar(state: TableState, cols: list[Column], columns_all: dict[str, list[str]]) -> Markup:
    compare = el(
        "form",
        {
            "id": "compare-form",
            "method": "get",
            "action": urls.project(state.workspace, state.project) + "/compare",
            "class": "compare-form",
        },
        el("button", {"type": "submit", "id": "compare-btn", "class": "primary"}, "Compare selected"),
        el("span", {"id": "selected-count", "class": "muted"}, "tick two or more rows"),
    )
    return el("div", {"class": "toolbar"}, compare, _picker(state, cols, columns_all))


def _picker(state: TableState, cols: list[Column], columns_all: dict[str, list[str]]) -> Markup:
    chosen = {c.text for c in cols}

    def box(kind: str, name: str) -> Markup:
        text = Column(kind, name).text
        return el(
            "label",
            {"class": "pick", "data-name": name.lower(), "data-exact": name},
            el("input", {"type": "checkbox", "name": "col", "value": text, "checked": text in chosen}),
            " ",
            name,
        )

    for c in cols:  # chosen columns are always offered, even when this page's rows lack them
        if c.kind in columns_all and c.name not in columns_all[c.kind]:
            columns_all[c.kind] = sorted([*columns_all[c.kind], c.name])
    groups = [
        (
            "Attributes",
            "attributes",
            [box("tags" if a == "tags" else "attribute", a) for a in ATTRIBUTE_COLUMNS],
        ),
        ("Parameters", "params", [box("params", n) for n in columns_all["params"]]),
        ("Metrics", "metrics", [box("metrics", n) for n in columns_all["metrics"]]),
        ("Others", "others", [box("others", n) for n in columns_all["others"]]),
    ]
    return el(
        "details",
        {
            "class": "picker",
            "id": "column-picker",
            "data-columns-url": urls.columns(state.workspace, state.project),
        },
        el("summary", {"class": "button"}, f"Columns ({len(cols)})"),
        el(
            "form",
            {"class": "popover", "method": "get", "action": urls.project(state.workspace, state.project)},
            el("input", {"type": "search", "class": "pick-search", "placeholder": "find a column…"}),
            _hidden("q", state.q),
            _hidden("sort", state.sort),
            _hidden("per_page", state.per_page if state.per_page != 50 else None),
            el("input", {"type": "hidden", "name": "picker", "value": "1"}),
            el(
                "div",
                {"class": "pick-groups"},
                [
                    el(
                        "fieldset",
                        {"data-group": group, "hidden": not items},
                        el("legend", None, title),
                        items,
                    )
                    for title, group, items in groups
                ],
            ),
            el(
                "div",
                {"class": "pick-actions"},
                el("button", {"type": "submit", "class": "primary"}, "Apply"),
                el("a", {"class": "button", "href": state.url(cols="", page=1)}, "Defaults"),
            ),
        ),
    )


def _sort_link(state: TableState, col: Column, sort: str) -> Markup:
    text = col.text
    current = sort.lstrip("-+")
    descending = sort.startswith("-")
    if current == text:
        new = text if descending else f"-{text}"
        arrow = " ▼" if descending else " ▲"
    else:
        first_desc = col.kind == "metrics" or (col.kind == "attribute" and col.name in TEXT_FIRST)
        new = f"-{text}" if first_desc else text
        arrow = ""
    return el(
        "a",
        {
            "href": state.url(sort=new, page=1),
            "class": "sort" + (" active" if arrow else ""),
            "title": f"sort by {text}",
        },
        col.label,
        el("span", {"class": "arrow"}, arrow) if arrow else None,
    )


KIND_LABEL = {"params": "param", "metrics": "metric", "others": "other", "attribute": "", "tags": ""}


def _table(state: TableState, rows: list[dict[str, Any]], cols: list[Column], sort: str) -> Markup:
    name_col = Column("attribute", "name")
    head = el(
        "tr",
        None,
        el(
            "th",
            {"class": "check"},
            el("input", {"type": "checkbox", "id": "select-all", "title": "select every row on this page"}),
        ),
        el("th", {"class": "name-col"}, _sort_link(state, name_col, sort)),
        [
            el(
                "th",
                {"class": f"col-{c.kind}", "data-field": c.text},
                el("span", {"class": "kind"}, KIND_LABEL[c.kind]) if KIND_LABEL[c.kind] else None,
                _sort_link(state, c, sort) if c.sortable else c.label,
            )
            for c in cols
        ],
    )
    if not rows:
        empty = (
            "No experiment matches this query." if state.q.strip() else "No experiments in this project yet."
        )
        body = [el("tr", None, el("td", {"colspan": len(cols) + 2, "class": "empty-row"}, empty))]
    else:
        tags_inline = not any(c.kind == "tags" for c in cols)
        body = [_row(state, r, cols, tags_inline) for r in rows]
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid experiments", "id": "experiments"},
            el("thead", None, head),
            el("tbody", None, body),
        ),
    )


def _row(state: TableState, r: dict[str, Any], cols: list[Column], tags_inline: bool) -> Markup:
    key = r["key"]
    link = urls.experiment(state.workspace, state.project, key)
    cells = [
        el(
            "td",
            {"class": "check"},
            el(
                "input",
                {
                    "type": "checkbox",
                    "name": "keys",
                    "value": key,
                    "form": "compare-form",
                    "class": "row-check",
                },
            ),
        ),
        el(
            "td",
            {"class": "name-col"},
            el("a", {"href": link, "class": "exp-name"}, r.get("name") or key[:12]),
            el("span", {"class": "key"}, key[:8]),
            el("span", {"class": "tags"}, [el("span", {"class": "tag"}, t) for t in r.get("tags", [])])
            if tags_inline and r.get("tags")
            else None,
        ),
    ]
    for c in cols:
        cells.append(_cell(r, c))
    return el("tr", {"data-key": key}, cells)


def _cell(r: dict[str, Any], c: Column) -> Markup:
    value = cell(r, c)
    if c.kind == "tags":
        return el("td", {"class": "tags"}, [el("span", {"class": "tag"}, t) for t in value])
    if value is ...:
        return el("td", {"class": "missing"}, "—")
    if c.kind == "attribute":
        if c.name == "created_at":
            return el("td", {"class": "nowrap"}, el("time", {"datetime": fmt.iso(value)}, fmt.when(value)))
        if c.name == "status":
            return el("td", None, el("span", {"class": f"status status-{value}"}, value))
        if c.name == "key":
            return el("td", None, el("code", None, value))
        return el("td", None, value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = fmt.metric(value) if c.kind == "metrics" else fmt.param(value)
    if len(text) > 80:
        text = text[:77] + "…"
    return el("td", {"class": "num" if numeric else None, "title": fmt.exact(value)}, text)


def _pager(state: TableState, total: int) -> Markup:
    last = max(1, math.ceil(total / state.per_page))
    first_row = 0 if total == 0 else (state.page - 1) * state.per_page + 1
    last_row = min(total, state.page * state.per_page)

    def nav(label: str, target: int, enabled: bool) -> Markup:
        if not enabled:
            return el("span", {"class": "button disabled"}, label)
        return el("a", {"class": "button", "href": state.url(page=target), "rel": None}, label)

    per_page = el(
        "form",
        {"method": "get", "action": urls.project(state.workspace, state.project), "class": "per-page"},
        _hidden("q", state.q),
        _hidden("sort", state.sort),
        _hidden("cols", state.cols),
        el(
            "label",
            None,
            "rows ",
            el(
                "select",
                {"name": "per_page", "class": "autosubmit"},
                [
                    el("option", {"value": n, "selected": n == state.per_page}, str(n))
                    for n in PER_PAGE_CHOICES
                ],
            ),
        ),
        el("noscript", None, el("button", {"type": "submit"}, "set")),
    )
    jump = el(
        "form",
        {"method": "get", "action": urls.project(state.workspace, state.project), "class": "jump"},
        _hidden("q", state.q),
        _hidden("sort", state.sort),
        _hidden("cols", state.cols),
        _hidden("per_page", state.per_page if state.per_page != 50 else None),
        el(
            "label",
            None,
            "page ",
            el("input", {"type": "number", "name": "page", "min": 1, "max": last, "value": state.page}),
        ),
        f" of {fmt.number(last)}",
    )
    return el(
        "nav",
        {"class": "pager", "aria-label": "pages"},
        el(
            "span",
            {"class": "muted"},
            f"{fmt.number(first_row)}–{fmt.number(last_row)} of {fmt.number(total)}",
        ),
        nav("« first", 1, state.page > 1),
        nav("‹ previous", state.page - 1, state.page > 1),
        jump,
        nav("next ›", state.page + 1, state.page < last),
        nav("last »", last, state.page < last),
        per_page,
    )


def canonical_cols(picked: list[str]) -> str:
    """``cols`` from the picker's ticked boxes; ``name`` stands for "no extra columns"."""
    cols, _ = parse_columns(picked)
    return format_columns(cols) or "name"
