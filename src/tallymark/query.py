"""The experiment query language: tokenizer, recursive-descent parser and AST.

    metrics.auc > 0.9 and params.optimizer = 'adam' and not tags = 'debug'

The grammar, the fields and the meaning of each operator are documented in docs/query-language.md.
This module only parses (it never evaluates text as code) and has no SQLAlchemy import, so the SDK and
the CLI can validate a query cheaply; :mod:`tallymark.store.query_sql` compiles the AST to SQL.

>>> parse("metrics.auc > 0.9 and not tags = 'debug'")
And(items=(Comparison(field=Field(kind='metrics', name='auc'), op='>', value=0.9), \
Not(operand=Comparison(field=Field(kind='tags', name=''), op='=', value='debug'))))
>>> parse("  ") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

__all__ = [
    "ATTRIBUTES",
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "And",
    "Comparison",
    "Exists",
    "Field",
    "Node",
    "Not",
    "Or",
    "QueryError",
    "Value",
    "format_query",
    "iter_fields",
    "parse",
    "parse_field",
]

MAX_QUERY_LENGTH = 4096
MAX_DEPTH = 50

# Plain fields (columns of the experiments table) and the type of value they compare with.
ATTRIBUTES: dict[str, str] = {
    "name": "text",
    "key": "text",
    "status": "text",
    "user": "text",
    "created_at": "time",
}
_PREFIXES = ("metrics", "params", "others")
_KIND_NOUN = {"metrics": "metric", "params": "parameter", "others": "other"}

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~")
_ORDERING = frozenset({"<", "<=", ">", ">="})
_MATCHING = frozenset({"~", "!~"})
_EQUALITY = frozenset({"=", "!="})
_KEYWORDS = frozenset({"and", "or", "not", "exists", "true", "false", "null"})
_INT64 = 2**63

Value = str | int | float | bool | None


# --------------------------------------------------------------------------------------------- errors


class QueryError(ValueError):
    """A query that cannot be parsed. ``column`` is 1-based; ``str()`` points at it with a caret."""

    def __init__(self, message: str, column: int, query: str) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.query = query

    def __str__(self) -> str:
        return f"{self.message} at column {self.column}\n{self.excerpt()}"

    def excerpt(self, width: int = 76) -> str:
        """The query (a window of it, if long) on one line and a caret under ``column`` on the next."""
        text = re.sub(r"\s", " ", self.query)  # newlines and tabs would break the caret alignment
        index = max(0, min(self.column - 1, len(text)))
        start, end = 0, len(text)
        if len(text) > width:
            start = max(0, min(index - width // 2, len(text) - width))
            end = start + width
        line = text[start:end]
        caret = index - start
        if start > 0:
            line, caret = "…" + line, caret + 1
        if end < len(text):
            line += "…"
        return f"  {line}\n  {' ' * caret}^"

    def to_dict(self) -> dict[str, object]:
        """The error as JSON for API responses: ``{"message", "column", "query"}``."""
        return {"message": self.message, "column": self.column, "query": self.query}


# ----------------------------------------------------------------------------------------------- AST
# Small immutable classes with value equality (dataclasses would import `inspect`, which is slow).


class _Immutable:
    __slots__ = ()
    _compared: tuple[str, ...] = ()  # the attributes that make up equality, hashing and repr()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _init(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._compared)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._key()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._compared)
        return f"{type(self).__name__}({inner})"


class Field(_Immutable):
    """What a comparison looks at.

    ``kind`` is ``"metrics"``, ``"params"``, ``"others"`` (``name`` = the logged name), ``"tags"``
    (``name`` = ``""``) or ``"attribute"`` (``name`` = a key of :data:`ATTRIBUTES`).
    """

    __slots__ = ("kind", "name")
    _compared = ("kind", "name")
    kind: str
    name: str

    def __init__(self, kind: str, name: str) -> None:
        self._init(kind=kind, name=name)

    def __str__(self) -> str:
        if self.kind in _PREFIXES:
            return f"{self.kind}.{_format_name(self.name)}"
        if self.kind == "tags":
            return "tags"
        return self.name


class Comparison(_Immutable):
    """``field op value``. ``op`` is one of :data:`OPERATORS` (``==`` is read as ``=``).

    Values were checked against the field by the parser: metrics compare with numbers, tags and text
    attributes with strings, ``created_at`` with milliseconds since the epoch (an ISO date in the query
    is converted), params and others with numbers, strings, booleans or null. ``column`` (where the
    comparison starts in the query, 1-based; 0 if built by hand) is not part of equality.
    """

    __slots__ = ("field", "op", "value", "column")
    _compared = ("field", "op", "value")
    field: Field
    op: str
    value: Value
    column: int

    def __init__(self, field: Field, op: str, value: Value, column: int = 0) -> None:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}")
        self._init(field=field, op=op, value=value, column=column)


class Exists(_Immutable):
    """``field exists``: the experiment has that metric / parameter / other / any tag / a name."""

    __slots__ = ("field", "column")
    _compared = ("field",)
    field: Field
    column: int

    def __init__(self, field: Field, column: int = 0) -> None:
        self._init(field=field, column=column)


class And(_Immutable):
    """All of ``items`` (two or more)."""

    __slots__ = ("items",)
    _compared = ("items",)
    items: tuple[Node, ...]

    def __init__(self, items: tuple[Node, ...] | list[Node]) -> None:
        self._init(items=tuple(items))


class Or(_Immutable):
    """Any of ``items`` (two or more)."""

    __slots__ = ("items",)
    _compared = ("items",)
    items: tuple[Node, ...]

    def __init__(self, items: tuple[Node, ...] | list[Node]) -> None:
        self._init(items=tuple(items))


class Not(_Immutable):
    __slots__ = ("operand",)
    _compared = ("operand",)
    operand: Node

    def __init__(self, operand: Node) -> None:
        self._init(operand=operand)


Node = Comparison | Exists | And | Or | Not


def iter_fields(node: Node | None) -> Iterator[Field]:
    """Every field a query mentions, left to right (repeats included)."""
    if node is None:
        return
    if isinstance(node, (Comparison, Exists)):
        yield node.field
    elif isinstance(node, Not):
        yield from iter_fields(node.operand)
    else:
        for item in node.items:
            yield from iter_fields(item)


# ------------------------------------------------------------------------------------------ tokenizer


class _Token:
    __slots__ = ("kind", "text", "start", "value")

    def __init__(self, kind: str, text: str, start: int, value: object = None) -> None:
        self.kind = kind  # word | string | number | op | ( | ) | end
        self.text = text  # the source text of the token
        self.start = start  # 0-based offset
        self.value = value  # string: its decoded text; number: int/float; word: the quoted name or None


_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OP = re.compile(r"==|!=|<=|>=|!~|[=<>~]")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "n": "\n", "t": "\t", "r": "\r"}
_QUOTES = "'\"`"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_.-/"


class _Lexer:
    """Reads tokens on demand, so the first error from the left is the one reported."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0

    def error(self, message: str, offset: int) -> QueryError:
        return QueryError(message, offset + 1, self.query)

    def next(self) -> _Token:
        q, n = self.query, len(self.query)
        while self.pos < n and q[self.pos].isspace():  # pasted text may hold no-break spaces
            self.pos += 1
        start = self.pos
        if start >= n:
            return _Token("end", "", n)
        ch = q[start]
        if ch in "()":
            self.pos += 1
            return _Token(ch, ch, start)
        if ch in _QUOTES:
            value = self._string()
            return _Token("string", q[start : self.pos], start, value)
        if ch in "0123456789" or (ch in "-." and _NUMBER.match(q, start)):
            return self._number()
        if ch.isalpha() or ch == "_":
            end = start + 1
            while end < n and _is_word_char(q[end]):
                end += 1
            self.pos = end
            quoted = None
            if q[end - 1] == "." and end < n and q[end] in _QUOTES:
                # metrics.`loss/total`, params."a b": the name is a quoted string glued to the dot
                quoted = self._string()
            return _Token("word", q[start : self.pos], start, quoted)
        m = _OP.match(q, start)
        if m:
            self.pos = m.end()
            return _Token("op", "=" if m.group() == "==" else m.group(), start)
        if ch == "!":
            raise self.error("unexpected '!' (use '!=', '!~' or 'not')", start)
        if ch == "&" or ch == "|":
            raise self.error(f"unexpected {ch!r} (use 'and' / 'or')", start)
        shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
        raise self.error(f"unexpected character {shown}", start)

    def _number(self) -> _Token:
        q, start = self.query, self.pos
        m = _NUMBER.match(q, start)
        assert m is not None
        end = m.end()
        if end < len(q) and (_is_word_char(q[end]) or q[end] in _QUOTES):
            stop = end
            while stop < len(q) and _is_word_char(q[stop]):
                stop += 1
            raise self.error(f"invalid number {q[start:stop]!r}", start)
        text = m.group()
        self.pos = end
        if re.fullmatch(r"-?[0-9]+", text):
            value: int | float = int(text)
            if not -_INT64 <= value < _INT64:
                raise self.error(f"number {text} is out of range", start)
        else:
            value = float(text)
            if value in (float("inf"), float("-inf")):
                raise self.error(f"number {text} is out of range", start)
        return _Token("number", text, start, value)

    def _string(self) -> str:
        q, n = self.query, len(self.query)
        start = self.pos
        quote = q[start]
        out: list[str] = []
        i = start + 1
        while True:
            if i >= n:
                raise self.error(f"unterminated string (no closing {quote})", start)
            ch = q[i]
            if ch == quote:
                break
            if ch == "\\":
                if i + 1 >= n:
                    raise self.error(f"unterminated string (no closing {quote})", start)
                esc = q[i + 1]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    i += 2
                    continue
                if esc == "u":
                    digits = q[i + 2 : i + 6]
                    if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                        raise self.error("\\u needs 4 hex digits", i)
                    code = int(digits, 16)
                    if code == 0 or 0xD800 <= code <= 0xDFFF:
                        raise self.error(f"\\u{digits} is not allowed in a string", i)
                    out.append(chr(code))
                    i += 6
                    continue
                raise self.error(f"unknown escape '\\{esc}' (write \\\\ for a backslash)", i)
            if ch == "\x00":
                raise self.error("NUL characters are not allowed", i)
            out.append(ch)
            i += 1
        self.pos = i + 1
        return "".join(out)


# --------------------------------------------------------------------------------------------- parser


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the query"
    if tok.kind == "string":
        return "a string"
    text = tok.text if len(tok.text) <= 30 else tok.text[:29] + "…"
    return repr(text)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.lexer = _Lexer(query)
        self.tok = self.lexer.next()
        self.depth = 0

    def error(self, message: str, tok: _Token | None = None) -> QueryError:
        tok = tok or self.tok
        return QueryError(message, tok.start + 1, self.query)

    def advance(self) -> _Token:
        tok = self.tok
        self.tok = self.lexer.next()
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.value is None and self.tok.text.lower() in words

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"query is nested too deeply (max {MAX_DEPTH} levels)", tok)

    # query := [or_expr] end
    def parse_query(self) -> Node | None:
        if self.tok.kind == "end":
            return None
        node = self.or_expr()
        if self.tok.kind == ")":
            raise self.error("unmatched ')'")
        if self.tok.kind != "end":
            raise self.error(f"expected 'and', 'or' or the end of the query, found {_describe(self.tok)}")
        return node

    # or_expr := and_expr ("or" and_expr)*
    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(_flatten(Or, items))

    # and_expr := not_expr ("and" not_expr)*
    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(_flatten(And, items))

    # not_expr := "not" not_expr | "(" or_expr ")" | predicate
    def not_expr(self) -> Node:
        tok = self.tok
        if self.at_keyword("not"):
            self.enter(tok)
            self.advance()
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand)
        if tok.kind == "(":
            self.enter(tok)
            self.advance()
            node = self.or_expr()
            if self.tok.kind != ")":
                if self.tok.kind == "end":
                    raise self.error(f"missing ')' (the '(' at column {tok.start + 1} is not closed)")
                raise self.error(f"expected 'and', 'or' or ')', found {_describe(self.tok)}")
            self.advance()
            self.depth -= 1
            return node
        return self.predicate()

    # predicate := field (op value | "exists" | "not" "exists")
    def predicate(self) -> Node:
        field_tok = self.tok
        field = self.field()
        tok = self.tok
        if self.at_keyword("exists"):
            self.advance()
            return Exists(field, field_tok.start + 1)
        if self.at_keyword("not"):
            self.advance()
            if not self.at_keyword("exists"):
                raise self.error(f"expected 'exists' after '{field} not'")
            self.advance()
            return Not(Exists(field, field_tok.start + 1))
        if tok.kind != "op":
            if tok.kind == "word" and tok.value is None and tok.text.lower() in ("is", "in", "like"):
                raise self.error(f"{tok.text!r} is not supported; use = null, or, ~ or exists")
            raise self.error(
                f"expected an operator ({', '.join(OPERATORS)}) or 'exists' after '{field}', "
                f"found {_describe(tok)}"
            )
        self.advance()
        value_tok = self.tok
        value = self.value(tok)
        return Comparison(field, tok.text, _check(self, field, tok, value_tok, value), field_tok.start + 1)

    def field(self) -> Field:
        tok = self.tok
        if tok.kind == "(" or tok.kind == ")" or tok.kind == "end":
            if tok.kind == "end" and tok.start == 0:
                raise self.error("expected a field")
            raise self.error(f"expected a field, found {_describe(tok)}")
        if tok.kind != "word":
            hint = " (the field goes first: metrics.auc > 0.9)" if tok.kind in ("number", "string") else ""
            raise self.error(f"expected a field, found {_describe(tok)}{hint}")
        self.advance()
        return _field_of(tok, self.error)

    def value(self, op: _Token) -> Value:
        tok = self.tok
        if tok.kind in ("string", "number"):
            if tok.kind == "string" and tok.text[0] == "`":
                raise self.error("backquotes are for names; quote values with '...' or \"...\"")
            self.advance()
            return tok.value  # type: ignore[return-value]
        if tok.kind == "word" and tok.value is None:
            word = tok.text.lower()
            if word in ("true", "false", "null"):
                self.advance()
                return None if word == "null" else word == "true"
            if word not in _KEYWORDS:
                raise self.error(
                    f"expected a value after '{op.text}', found {_describe(tok)} (quote text: '{tok.text}')"
                )
        raise self.error(f"expected a value after '{op.text}'")


def _flatten(cls: type[And] | type[Or], items: list[Node]) -> tuple[Node, ...]:
    out: list[Node] = []
    for item in items:
        out.extend(item.items if isinstance(item, cls) else (item,))
    return tuple(out)


def _field_of(tok: _Token, error: Callable[[str, _Token], QueryError]) -> Field:
    text = tok.text
    word = text
    if tok.value is not None:  # metrics.`a b`: the word part ends at the quote
        word = text[: min(text.index(q) for q in _QUOTES if q in text)]
    prefix, dot, rest = word.partition(".")
    low = prefix.lower()
    if not dot:
        if low == "tags":
            return Field("tags", "")
        if low in ATTRIBUTES:
            return Field("attribute", low)
        if low in _KEYWORDS:
            raise error(f"expected a field, found {_describe(tok)}", tok)
        raise error(f"unknown field {text!r}{_suggest(low)}", tok)
    if low in _PREFIXES:
        if tok.value is not None:
            if rest:
                raise error(f"unknown field {text!r}: quote the whole name after '{prefix}.'", tok)
            name = str(tok.value)
        else:
            name = rest
        if not name:
            raise error(f"expected a {_KIND_NOUN[low]} name after '{prefix}.'", tok)
        return Field(low, name)
    if low == "tags" or low in ATTRIBUTES:
        raise error(f"{prefix!r} has no sub-fields (found {text!r})", tok)
    raise error(f"unknown field {text!r}{_suggest(low, rest)}", tok)


def _suggest(word: str, rest: str | None = None) -> str:
    known = [*_PREFIXES, "tags", *ATTRIBUTES] if rest is None else list(_PREFIXES)
    guess = {
        "metric": "metrics",
        "param": "params",
        "parameters": "params",
        "other": "others",
        "tag": "tags",
    }.get(word)
    if guess is None:
        import difflib  # only on the error path

        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    if guess is None:
        return "; fields are metrics.NAME, params.NAME, others.NAME, tags, " + ", ".join(ATTRIBUTES)
    if rest is not None and guess in _PREFIXES:
        return f"; did you mean '{guess}.{rest}'?"
    return f"; did you mean {guess!r}?"


def _type_name(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string"


def _check(parser: _Parser, field: Field, op_tok: _Token, value_tok: _Token, value: Value) -> Value:
    """Reject comparisons that can never make sense, with the column of the operator."""
    op = op_tok.text

    def fail(message: str) -> QueryError:
        return parser.error(message, op_tok)

    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if op in _MATCHING and not isinstance(value, str):
        raise fail(f"'{op}' matches text; compare {field} {op} with a string, not {_type_name(value)}")
    if op in _ORDERING and not (is_num or isinstance(value, str)):
        raise fail(f"'{op}' needs a number or a string, not {_type_name(value)}")
    if field.kind == "metrics":
        if op in _MATCHING:
            raise fail(f"'{op}' matches text and metrics are numbers")
        if not is_num:
            raise fail(f"metrics are numbers; compare {field} with a number, not {_type_name(value)}")
    elif field.kind == "tags":
        if not isinstance(value, str):
            raise fail(f"compare tags with a string, not {_type_name(value)}")
        if op in _ORDERING:
            raise fail(f"tags support =, !=, ~, !~ and exists, not '{op}'")
    elif field.kind == "attribute":
        kind = ATTRIBUTES[field.name]
        if kind == "time":
            if isinstance(value, str):
                if op in _MATCHING:
                    raise fail(f"'{op}' does not apply to {field}; compare it with a date or a number")
                return _timestamp_ms(parser, value_tok, value)
            if not is_num:
                raise fail(f"compare {field} with an ISO date or milliseconds, not {_type_name(value)}")
        elif value is None:
            if op not in _EQUALITY:
                raise fail("null can only be compared with = or !=")
            if field.name != "name":
                raise fail(f"{field} is never null")
        elif not isinstance(value, str):
            raise fail(f"{field} is text; compare it with a string, not {_type_name(value)}")
    elif (value is None or isinstance(value, bool)) and op not in _EQUALITY:
        raise fail(f"{_type_name(value)} can only be compared with = or !=")
    return value


def _timestamp_ms(parser: _Parser, tok: _Token, text: str) -> int:
    """An ISO 8601 date or date-time (UTC unless it has an offset) as milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise parser.error(
            f"{text!r} is not an ISO date such as '2024-05-31' or '2024-05-31T12:00:00Z'", tok
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# ------------------------------------------------------------------------------------------ public API


def parse(query: str | None) -> Node | None:
    """Parse a query; ``None`` for an empty (or blank) query, which means "every experiment".

    Raises :class:`QueryError` with the column where the query stopped making sense.
    """
    if query is None:
        return None
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, not {type(query).__name__}")
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query is too long ({len(query)} characters, max {MAX_QUERY_LENGTH})",
            MAX_QUERY_LENGTH + 1,
            query,
        )
    return _Parser(query).parse_query()


def parse_field(text: str) -> Field:
    """Parse one field, as used for sorting: ``"metrics.auc"``, ``"params.`a b`"``, ``"created_at"``."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError("field is too long", MAX_QUERY_LENGTH + 1, text)
    parser = _Parser(text)
    field = parser.field()
    if parser.tok.kind != "end":
        raise parser.error(f"expected a single field, found {_describe(parser.tok)} after it")
    return field


def _format_name(name: str) -> str:
    if name and all(_is_word_char(ch) for ch in name) and not name.endswith("."):
        return name
    return "`" + _escape(name, "`") + "`"


def _escape(text: str, quote: str) -> str:
    out = []
    for ch in text:
        if ch == "\\" or ch == quote:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(ch)
    return "".join(out)


def _format_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + _escape(value, "'") + "'"


def format_query(node: Node | None) -> str:
    """The canonical text of a query: ``parse(format_query(node)) == node`` for any parsed node."""
    if node is None:
        return ""
    if isinstance(node, Comparison):
        return f"{node.field} {node.op} {_format_value(node.value)}"
    if isinstance(node, Exists):
        return f"{node.field} exists"
    if isinstance(node, Not):
        inner = format_query(node.operand)
        return f"not ({inner})" if isinstance(node.operand, (And, Or)) else f"not {inner}"
    word = " and " if isinstance(node, And) else " or "
    parts = []
    for item in node.items:
        text = format_query(item)
        # an Or inside an And needs them; an And inside an Or does not, but reads better with them
        parts.append(f"({text})" if isinstance(item, (And, Or)) else text)
    return word.join(parts)
