"""Compile the query language (:mod:`tallymark.query`) to SQLAlchemy Core over the metadata schema.

    stmt = select(experiments.c.key).where(experiments.c.project_id == pid, compile_where(parse(q)))
    stmt = stmt.order_by(*sort_expression("metrics.auc", descending=True), experiments.c.id)

Each metric / parameter / other / tag comparison becomes ``experiments.id IN (SELECT experiment_id
FROM <table> WHERE name = :name AND <value test>)``: an uncorrelated subquery that walks the
``(name, value)`` indexes (ix_metric_summaries_name_last, ix_params_name_num, ix_tags_tag) on SQLite and
PostgreSQL alike. Every value from the query is a bound parameter; nothing the user typed is formatted
into SQL text.

Missing values: a comparison never matches an experiment that lacks the metric / parameter / other
(or, for ``name``, has none), whatever the operator, so ``not (...)`` of it does. Every piece compiled
here is two-valued (never SQL NULL), which is what makes ``not`` mean "everything else".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true
from sqlalchemy.sql.elements import UnaryExpression

from tallymark.query import (
    And,
    Comparison,
    Exists,
    Field,
    Node,
    Not,
    Or,
    QueryError,
    Value,
    parse_field,
)
from tallymark.store.schema import experiments, metric_summaries, others, params, tags

__all__ = ["LIKE_ESCAPE", "compile_where", "like_pattern", "sort_expression"]

LIKE_ESCAPE = "!"

_VALUE_TABLES = {"params": params, "others": others}


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with ``%``, ``_`` and :data:`LIKE_ESCAPE` escaped."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
    return "%" + escaped.replace("_", LIKE_ESCAPE + "_") + "%"


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    # ILIKE on PostgreSQL, lower(x) LIKE lower(y) on SQLite: case-insensitive either way.
    return column.ilike(like_pattern(text), escape=LIKE_ESCAPE)


def _order(column: Any, op: str, value: Value) -> ColumnElement[bool]:
    """``column op value`` for the positive operators; SQL NULL where ``column`` is NULL."""
    if op == "=":
        return column == value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "~":
        assert isinstance(value, str)
        return _contains(column, value)
    raise AssertionError(f"not a positive operator: {op}")


_NEGATED = {"!=": "=", "!~": "~"}


def _test(column: Any, op: str, value: Value, null_is_other: bool) -> ColumnElement[bool]:
    """A two-valued ``column op value``.

    A NULL ``column`` never matches a positive operator. For ``!=`` / ``!~`` it matches when
    ``null_is_other`` (a row exists but holds a value of another type, or NaN: it is "not equal") and
    does not otherwise (the value is missing).
    """
    if op not in _NEGATED:
        return _order(column, op, value)
    positive = _order(column, _NEGATED[op], value)
    if null_is_other:
        return or_(column.is_(None), not_(positive))
    return and_(column.is_not(None), not_(positive))


def _ids_where(table: Any, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return experiments.c.id.in_(select(table.c.experiment_id).where(*conditions))


def _metric(node: Comparison) -> ColumnElement[bool]:
    # One summary row per (experiment, metric). last_value is NULL when the last value was NaN, which
    # compares unequal to everything: only `!=` matches it, as in IEEE 754.
    ms = metric_summaries
    test = _test(ms.c.last_value, node.op, node.value, null_is_other=True)
    return _ids_where(ms, ms.c.name == node.field.name, test)


def _param(node: Comparison) -> ColumnElement[bool]:
    # One row per (experiment, name): value_json, value_num for finite numbers and value_text for the
    # text form (a string itself, 'true'/'false', or the JSON text of numbers, lists and dicts; NULL for
    # null). A number compares with value_num, a string with value_text; `!=` / `!~` match every value
    # of the parameter that does not match `=` / `~`, including values of another type.
    table = _VALUE_TABLES[node.field.kind]
    value, op = node.value, node.op
    if value is None:
        # JSON null; value_json is NOT NULL, so this is two-valued
        test = table.c.value_json == "null" if op == "=" else table.c.value_json != "null"
    elif isinstance(value, bool):
        # a boolean is stored as JSON true/false (and value_text 'true'/'false'); the strings "true",
        # "True", "TRUE" (as argparse & co. log flags) match as well
        flag = func.lower(func.coalesce(table.c.value_text, table.c.value_json)) == (
            "true" if value else "false"
        )
        test = flag if op == "=" else not_(flag)
    elif isinstance(value, str):
        test = _test(table.c.value_text, op, value, null_is_other=True)
    else:
        test = _test(table.c.value_num, op, value, null_is_other=True)
    return _ids_where(table, table.c.name == node.field.name, test)


def _tags(node: Comparison) -> ColumnElement[bool]:
    assert isinstance(node.value, str)
    if node.op in ("=", "!="):
        has = _ids_where(tags, tags.c.tag == node.value)
    else:
        has = _ids_where(tags, _contains(tags.c.tag, node.value))
    # `tags != 'x'` / `tags !~ 'x'`: has no such tag (experiments without any tag included)
    return not_(has) if node.op in _NEGATED else has


def _attribute(node: Comparison) -> ColumnElement[bool]:
    column = experiments.c[node.field.name]
    if node.value is None:
        return column.is_(None) if node.op == "=" else column.is_not(None)
    test = _test(column, node.op, node.value, null_is_other=False)
    if column.nullable and node.op not in _NEGATED:
        test = and_(column.is_not(None), test)  # keep it two-valued under `not`
    return test


def _exists(field: Field) -> ColumnElement[bool]:
    if field.kind == "metrics":
        return _ids_where(metric_summaries, metric_summaries.c.name == field.name)
    if field.kind in _VALUE_TABLES:
        table = _VALUE_TABLES[field.kind]
        return _ids_where(table, table.c.name == field.name)
    if field.kind == "tags":
        return experiments.c.id.in_(select(tags.c.experiment_id))
    column = experiments.c[field.name]
    return column.is_not(None) if column.nullable else true()


_COMPARE = {"metrics": _metric, "params": _param, "others": _param, "tags": _tags, "attribute": _attribute}


def _compile(node: Node) -> ColumnElement[bool]:
    if isinstance(node, Comparison):
        return _COMPARE[node.field.kind](node)
    if isinstance(node, Exists):
        return _exists(node.field)
    if isinstance(node, Not):
        return not_(_compile(node.operand))
    if isinstance(node, And):
        return and_(*(_compile(item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(_compile(item) for item in node.items))
    raise TypeError(f"not a query node: {node!r}")


def compile_where(node: Node | None) -> ColumnElement[bool]:
    """The WHERE clause over ``experiments`` for a parsed query (``None``, the empty query, is true).

    Combine it with the caller's own filters (project, permissions), e.g.
    ``select(experiments).where(experiments.c.project_id == pid, compile_where(parse(text)))``.
    """
    if node is None:
        return true()
    return _compile(node)


def sort_expression(field: str | Field, descending: bool = False) -> tuple[UnaryExpression[Any], ...]:
    """ORDER BY clauses sorting experiments by a field, NULLs (missing values) last either way.

    ``field`` is ``name``, ``key``, ``status``, ``user``, ``created_at``, ``metrics.NAME`` (the last
    value), ``params.NAME`` / ``others.NAME`` (numbers first by value, then text values, then
    experiments without it), parsed with :func:`tallymark.query.parse_field` (so ``metrics.`a b``` works).
    Use as ``stmt.order_by(*sort_expression(...), experiments.c.id)``: add a unique tie-breaker for
    stable paging. Raises :class:`~tallymark.query.QueryError` for an unknown or unsortable field.
    """
    parsed = parse_field(field) if isinstance(field, str) else field
    keys: list[Any]
    if parsed.kind == "metrics":
        ms = metric_summaries
        keys = [
            select(ms.c.last_value)
            .where(ms.c.experiment_id == experiments.c.id, ms.c.name == parsed.name)
            .scalar_subquery()
        ]
    elif parsed.kind in _VALUE_TABLES:
        table = _VALUE_TABLES[parsed.kind]
        keys = [
            select(column)
            .where(table.c.experiment_id == experiments.c.id, table.c.name == parsed.name)
            .scalar_subquery()
            for column in (table.c.value_num, table.c.value_text)
        ]
    elif parsed.kind == "attribute":
        keys = [experiments.c[parsed.name]]
    else:
        text = field if isinstance(field, str) else str(field)
        raise QueryError(f"cannot sort by {parsed}", 1, text)
    return tuple((key.desc() if descending else key.asc()).nulls_last() for key in keys)
