"""Columns of the experiment table: the ``?cols=`` list, its defaults, and reading a cell.

A column is a query-language field (``params.learning_rate``, ``metrics.`loss (total)```,
``others.seed``, ``created_at``, ``status``, ``user``, ``key``) or ``tags``; ``cols`` joins them with
commas. Names with a comma or other unusual characters are backquoted by :func:`field_text`, so
splitting on commas outside quotes gets them back.

>>> split_fields("params.lr,metrics.`a,b`, tags")
['params.lr', 'metrics.`a,b`', 'tags']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tallymark.query import Field, QueryError, iter_fields, parse_field

ATTRIBUTE_COLUMNS = ("created_at", "status", "user", "tags", "key")
TEXT_FIRST = ("created_at",)  # sorted newest first on the first click


@dataclass(frozen=True)
class Column:
    kind: str  # params | metrics | others | attribute | tags
    name: str

    @property
    def text(self) -> str:
        return "tags" if self.kind == "tags" else field_text(self.kind, self.name)

    @property
    def label(self) -> str:
        return self.name if self.kind != "tags" else "tags"

    @property
    def sortable(self) -> bool:
        return self.kind != "tags"


def field_text(kind: str, name: str) -> str:
    """The canonical field text, quoting names that need it."""
    if kind == "attribute":
        return name
    return str(Field(kind, name))


def split_fields(text: str) -> list[str]:
    """Split a comma-separated field list, respecting quotes and backslash escapes inside them."""
    out, buf, quote, escaped = [], [], "", False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif quote:
            buf.append(ch)
            if ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "`'\"":
            buf.append(ch)
            quote = ch
        elif ch == ",":
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return [f for f in out if f]


def parse_column(text: str) -> Column:
    """One column from its field text; raises QueryError when it is not a field."""
    if text.strip().lower() == "tags":
        return Column("tags", "tags")
    f = parse_field(text.strip())
    if f.kind == "tags":
        return Column("tags", "tags")
    return Column(f.kind, f.name)


def parse_columns(texts: Iterable[str]) -> tuple[list[Column], list[str]]:
    """Columns (deduplicated, in order) and the texts that were not fields."""
    cols: list[Column] = []
    bad: list[str] = []
    for t in texts:
        try:
            c = parse_column(t)
        except QueryError:
            bad.append(t)
            continue
        if c not in cols and not (c.kind == "attribute" and c.name == "name"):
            cols.append(c)
    return cols, bad


def format_columns(cols: Sequence[Column]) -> str:
    return ",".join(c.text for c in cols)


def default_columns(rows: Sequence[dict[str, Any]], metric_names: Sequence[str]) -> list[Column]:
    """Columns when the URL names none: when, status, parameters that differ across the rows shown
    (at most 4) and up to 6 metrics (evaluation metrics before ``train*``, ``sys.*`` left out).
    Tags are shown under the name unless chosen as a column."""
    cols = [Column("attribute", "created_at"), Column("attribute", "status")]
    names = sorted({p for r in rows for p in r.get("params", {})})
    differ = [n for n in names if len({_hashable(r.get("params", {}).get(n)) for r in rows}) > 1]
    cols += [Column("params", n) for n in (differ or names[:3])[:4]]
    metrics = [m for m in metric_names if not m.startswith("sys.")]
    metrics.sort(key=lambda m: (m.lower().startswith("train"), m))
    cols += [Column("metrics", m) for m in metrics[:6]]
    return cols


def _hashable(value: Any) -> Any:
    return repr(value)


def with_query_fields(cols: list[Column], node: Any, sort_field: str | None) -> list[Column]:
    """Add the fields a query filters on and the sort field, so the user sees what they asked for."""
    extra: list[Column] = []
    for f in iter_fields(node):
        if f.kind in ("metrics", "params", "others"):
            extra.append(Column(f.kind, f.name))
        elif f.kind == "attribute" and f.name not in ("name",):
            extra.append(Column("attribute", f.name))
    if sort_field:
        try:
            c = parse_column(sort_field)
            if not (c.kind == "attribute" and c.name == "name"):
                extra.append(c)
        except QueryError:
            pass
    return cols + [c for c in dict.fromkeys(extra) if c not in cols]


def cell(row: dict[str, Any], col: Column) -> Any:
    """The raw value of ``col`` in an experiment row of the list API (missing: ``...``)."""
    if col.kind == "tags":
        return row.get("tags", [])
    if col.kind == "attribute":
        return row.get(col.name, ...)
    return row.get(col.kind, {}).get(col.name, ...)
