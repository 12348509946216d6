"""Pieces several pages share: confusion-matrix heatmaps, key/value tables, code and diff blocks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from tallymark.server.ui import fmt
from tallymark.server.ui.html import Markup, el

MAX_MATRIX = 60
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def confusion_matrix(data: dict[str, Any], caption: str | None = None, swatch: int | None = None) -> Markup:
    """A heatmap table: counts, the percentage of each actual row, shaded by that percentage.

    Correct predictions (the diagonal) are shaded blue, errors orange; the shade is one of eleven
    CSS classes (no inline style: the page's CSP forbids it).
    """
    matrix: list[list[Any]] = data.get("matrix") or []
    labels = list(data.get("labels") or [str(i) for i in range(len(matrix))])
    title = caption or data.get("title") or "Confusion matrix"
    if len(matrix) > MAX_MATRIX:
        return el(
            "figure",
            {"class": "cm"},
            el("figcaption", None, title),
            el("p", {"class": "muted"}, f"{len(matrix)} × {len(matrix)} classes: too large to draw here."),
        )
    totals = [sum(v for v in row if isinstance(v, (int, float))) for row in matrix]
    head = el(
        "tr",
        None,
        el("th", {"class": "corner"}, el("span", None, "actual ↓"), el("span", None, "predicted →")),
        [el("th", {"class": "pred", "scope": "col"}, str(lab)) for lab in labels],
        el("th", {"class": "total", "scope": "col"}, "total"),
    )
    rows = []
    for i, row in enumerate(matrix):
        cells = []
        for j, v in enumerate(row):
            share = (v / totals[i]) if totals[i] else 0.0
            level = min(10, max(0, round(share * 10)))
            kind = "ok" if i == j else "err"
            cells.append(
                el(
                    "td",
                    {
                        "class": f"cell {kind} h{level}",
                        "title": f"actual {labels[i] if i < len(labels) else i}, "
                        f"predicted {labels[j] if j < len(labels) else j}: {v} ({share:.2%} of the row)",
                        "data-count": v,
                    },
                    el("span", {"class": "count"}, fmt.param(v)),
                    el("span", {"class": "pct"}, f"{share:.1%}"),
                )
            )
        rows.append(
            el(
                "tr",
                None,
                el("th", {"class": "actual", "scope": "row"}, str(labels[i]) if i < len(labels) else str(i)),
                cells,
                el("td", {"class": "total"}, fmt.param(totals[i])),
            )
        )
    return el(
        "figure",
        {"class": "cm"},
        el(
            "figcaption",
            None,
            el("span", {"class": f"swatch c{swatch}"}) if swatch is not None else None,
            title,
        ),
        el("table", {"class": "cm-table"}, el("thead", None, head), el("tbody", None, rows)),
    )


def kv_table(pairs: Iterable[tuple[Any, Any]], table_id: str | None = None, cls: str = "kv") -> Markup:
    """Name/value rows; values are shown exactly (see :func:`fmt.param`)."""
    rows = [
        el(
            "tr",
            None,
            el("th", {"scope": "row"}, name),
            el("td", None, value if isinstance(value, Markup) else fmt.param(value)),
        )
        for name, value in pairs
    ]
    return el("table", {"class": cls, "id": table_id}, el("tbody", None, rows))


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as ``a.b.c`` pairs (lists stay values)."""
    out: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.extend(flatten(v, name))
            else:
                out.append((name, v))
    else:
        out.append((prefix or "value", data))
    return out


def code_block(source: str, cls: str = "code") -> Markup:
    """Source with line numbers (CSS counters; copying the text copies no numbers)."""
    lines = source.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return el(
        "pre",
        {"class": f"{cls} numbered"},
        el("code", None, [el("span", {"class": "ln"}, line, "\n") for line in lines]),
    )


def diff_block(diff: str) -> Markup:
    """A unified diff with added/removed/hunk lines coloured."""
    parts = []
    for line in diff.split("\n"):
        if line.startswith("+++") or line.startswith("---") or line.startswith("diff "):
            cls = "d-file"
        elif line.startswith("+"):
            cls = "d-add"
        elif line.startswith("-"):
            cls = "d-del"
        elif line.startswith("@@"):
            cls = "d-hunk"
        else:
            cls = None
        parts.append(el("span", {"class": cls}, line, "\n"))
    return el("pre", {"class": "diff"}, parts)


def text_block(text: str, block_id: str | None = None) -> Markup:
    """Terminal output: ANSI colour codes removed, everything else shown as text."""
    return el("pre", {"class": "console", "id": block_id}, _ANSI.sub("", text))


def tags(values: Sequence[str]) -> Markup:
    return el("span", {"class": "tags"}, [el("span", {"class": "tag"}, t) for t in values])


def empty(message: str) -> Markup:
    return el("p", {"class": "empty-note"}, message)


def listing(table_id: str, head: Any, body_rows: Sequence[Any], empty_message: str) -> Markup:
    """A narrow list table (artifacts, models…), or a note when there is nothing to list."""
    if not body_rows:
        return empty(empty_message)
    return el(
        "div",
        {"class": "table-wrap narrow"},
        el("table", {"class": "grid", "id": table_id}, el("thead", None, head), el("tbody", None, body_rows)),
    )


def data_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], limit: int = 500) -> Markup:
    shown = rows[:limit]
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid compact"},
            el("thead", None, el("tr", None, [el("th", None, str(c)) for c in columns])),
            el("tbody", None, [el("tr", None, [el("td", None, fmt.param(v)) for v in r]) for r in shown]),
        ),
        el("p", {"class": "muted"}, f"first {limit} of {len(rows)} rows") if len(rows) > limit else None,
    )
