"""The query language: parser (tallymark.query) and its SQL compilation (tallymark.store.query_sql).

The compile tests take an ``engine`` fixture. It is defined below for SQLite only, for now: when
tests/conftest.py provides an ``engine`` fixture parametrized over SQLite and PostgreSQL, delete the local
one (a module fixture would shadow conftest's); or build it from conftest's ``db_url`` fixture. The tests
create the schema with ``create_all``, keep their rows in a workspace of their own and delete them
afterwards, so they also run on a shared database (they pass on PostgreSQL 15, C and ICU collations).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, insert, select, text

from tallymark import jsonvalue
from tallymark.query import (
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    And,
    Comparison,
    Exists,
    Field,
    Not,
    Or,
    QueryError,
    format_query,
    iter_fields,
    parse,
    parse_field,
)
from tallymark.service.values import encode_value
from tallymark.store import schema
from tallymark.store.query_sql import compile_where, like_pattern, sort_expression

# ------------------------------------------------------------------------------------------ the parser


def cmp(kind: str, name: str, op: str, value: Any) -> Comparison:
    return Comparison(Field(kind, name), op, value)


AUC = cmp("metrics", "auc", ">", 0.9)
ADAM = cmp("params", "optimizer", "=", "adam")
BASE = cmp("tags", "", "=", "baseline")


def test_empty_query_means_everything() -> None:
    assert parse("") is None
    assert parse("  \n\t ") is None
    assert parse(None) is None


def test_comparison() -> None:
    assert parse("metrics.auc > 0.9") == AUC
    assert parse("metrics.auc>0.9") == AUC
    assert parse("params.optimizer = 'adam'") == ADAM
    assert parse('params.optimizer == "adam"') == ADAM  # == is read as =


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">=", "~", "!~"])
def test_every_operator(op: str) -> None:
    assert parse(f"params.x {op} 'v'") == cmp("params", "x", op, "v")


def test_precedence_not_and_or() -> None:
    # not > and > or
    assert parse("metrics.auc > 0.9 or params.optimizer = 'adam' and tags = 'baseline'") == Or(
        (AUC, And((ADAM, BASE)))
    )
    assert parse("not metrics.auc > 0.9 and params.optimizer = 'adam'") == And((Not(AUC), ADAM))
    assert parse("not (metrics.auc > 0.9 and params.optimizer = 'adam')") == Not(And((AUC, ADAM)))
    assert parse("(metrics.auc > 0.9 or params.optimizer = 'adam') and tags = 'baseline'") == And(
        (Or((AUC, ADAM)), BASE)
    )
    assert parse("not not tags = 'baseline'") == Not(Not(BASE))


def test_and_or_chains_are_flattened() -> None:
    assert parse("tags = 'a' and tags = 'b' and (tags = 'c' and tags = 'd')") == And(
        tuple(cmp("tags", "", "=", t) for t in "abcd")
    )
    assert parse("tags = 'a' or (tags = 'b' or tags = 'c')") == Or(
        tuple(cmp("tags", "", "=", t) for t in "abc")
    )


def test_keywords_and_field_words_are_case_insensitive() -> None:
    assert parse("METRICS.auc > 0.9 AND Not Params.optimizer = 'adam'") == And((AUC, Not(ADAM)))
    assert parse("Status = 'ended'") == cmp("attribute", "status", "=", "ended")
    assert parse("params.x = TRUE") == cmp("params", "x", "=", True)
    # ... but names are not
    assert parse("metrics.AUC > 1") == cmp("metrics", "AUC", ">", 1)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("metrics.val.auc", Field("metrics", "val.auc")),
        ("metrics.train-auc", Field("metrics", "train-auc")),
        ("metrics.loss/total", Field("metrics", "loss/total")),
        ("metrics.`loss/total`", Field("metrics", "loss/total")),
        ("params.learning_rate", Field("params", "learning_rate")),
        ("params.2nd_layer", Field("params", "2nd_layer")),
        ('metrics."a b"', Field("metrics", "a b")),
        ("metrics.'a b'", Field("metrics", "a b")),
        ("metrics.`it's \\`odd\\``", Field("metrics", "it's `odd`")),
        ("metrics.`and`", Field("metrics", "and")),
        ("metrics.and", Field("metrics", "and")),
        ("others.git.branch", Field("others", "git.branch")),
        ("params.größe", Field("params", "größe")),
        ("tags", Field("tags", "")),
        ("name", Field("attribute", "name")),
        ("created_at", Field("attribute", "created_at")),
    ],
)
def test_field_names(query: str, field: Field) -> None:
    assert parse_field(query) == field
    node = parse(f"{query} exists")
    assert node == Exists(field)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("0.5", 0.5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("-2.5E-3", -0.0025),
        ("9223372036854775807", 2**63 - 1),
        ("'text'", "text"),
        ('"text"', "text"),
        ("''", ""),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'tab\there\nnewline'", "tab\there\nnewline"),
        (r"'\u00e9t\u00E9'", "été"),
        ("'double \" inside single'", 'double " inside single'),
        ("true", True),
        ("False", False),
        ("null", None),
    ],
)
def test_literals(literal: str, value: Any) -> None:
    node = parse(f"params.x = {literal}")
    assert isinstance(node, Comparison)
    assert node.value == value and type(node.value) is type(value)


def test_any_whitespace_separates_and_no_space_is_needed_around_quotes() -> None:
    assert parse("metrics.auc\u00a0>\t0.9\n") == AUC
    assert parse("params.optimizer='adam'and(metrics.auc>0.9)") == And((ADAM, AUC))


def test_negative_number_right_after_operator() -> None:
    assert parse("metrics.loss>-1") == cmp("metrics", "loss", ">", -1)
    assert parse("metrics.loss<=-1e-3") == cmp("metrics", "loss", "<=", -0.001)


def test_created_at_accepts_iso_dates() -> None:
    assert parse("created_at >= '2024-02-01'") == cmp("attribute", "created_at", ">=", 1706745600000)
    assert parse("created_at < '2024-02-01T01:00:00+01:00'") == cmp(
        "attribute", "created_at", "<", 1706745600000
    )
    assert parse("created_at > 1706745600000") == cmp("attribute", "created_at", ">", 1706745600000)


def test_exists_and_not_exists() -> None:
    assert parse("metrics.auc exists") == Exists(Field("metrics", "auc"))
    assert parse("metrics.auc not exists") == Not(Exists(Field("metrics", "auc")))
    assert parse("tags EXISTS and name exists") == And(
        (Exists(Field("tags", "")), Exists(Field("attribute", "name")))
    )


def test_nodes_record_their_column_outside_equality() -> None:
    node = parse("tags exists and  metrics.auc > 0.9")
    assert isinstance(node, And)
    assert [item.column for item in node.items] == [1, 18]  # type: ignore[union-attr]
    assert node.items[1] == AUC  # built without a column


def test_nodes_are_immutable_and_hashable() -> None:
    node = parse("metrics.auc > 0.9 and not tags = 'baseline'")
    assert hash(node) == hash(And((AUC, Not(BASE))))
    with pytest.raises(AttributeError):
        AUC.value = 1  # type: ignore[misc]


def test_iter_fields() -> None:
    node = parse("metrics.auc > 0.9 or not (params.optimizer = 'adam' and tags exists)")
    assert list(iter_fields(node)) == [
        Field("metrics", "auc"),
        Field("params", "optimizer"),
        Field("tags", ""),
    ]
    assert list(iter_fields(None)) == []


@pytest.mark.parametrize(
    "query",
    [
        "metrics.auc > 0.9",
        "metrics.`loss total` <= -0.001 and params.`a\\`b` = 'x'",
        "params.optimizer = 'it\\'s' or params.x = \"q\\\\\" and not tags ~ 'b'",
        "not (tags = 'a' or tags = 'b') and (name = null or name !~ 'x')",
        "params.f = true and params.g != false and others.`.x.` exists and metrics.m not exists",
        "params.t = 'tab\\tnew\\nline' and created_at >= '2024-01-01' and key = 'abc'",
        "((tags = 'a' or tags = 'b') and (tags = 'c' or tags = 'd')) or status = 'running'",
    ],
)
def test_format_query_round_trips(query: str) -> None:
    node = parse(query)
    assert parse(format_query(node)) == node
    assert format_query(None) == ""


# errors: (query, column, start of the message)
ERRORS = [
    ("metrics.auc > and tags exists", 15, "expected a value after '>'"),
    ("metrics.auc >", 14, "expected a value after '>'"),
    ("metrics.auc > 0.9 and", 22, "expected a field"),
    ("metrics.auc 0.9", 13, "expected an operator"),
    ("metrics.auc", 12, "expected an operator"),
    ("metric.auc > 0.9", 1, "unknown field 'metric.auc'; did you mean 'metrics.auc'?"),
    ("foo = 1", 1, "unknown field 'foo'"),
    ("tags.x = 'a'", 1, "'tags' has no sub-fields"),
    ("metrics. > 1", 1, "expected a metric name after 'metrics.'"),
    ("params.`` = 1", 1, "expected a parameter name"),
    ("params.optimizer = 'adam", 20, "unterminated string"),
    ('name = "x', 8, "unterminated string"),
    ("name = 'x\\", 8, "unterminated string"),
    ("metrics.`a b > 1", 9, "unterminated string"),
    ("name = 'a\\qb'", 10, "unknown escape '\\q'"),
    ("name = '\\u12'", 9, "\\u needs 4 hex digits"),
    ("(metrics.auc > 0.9", 19, "missing ')' (the '(' at column 1 is not closed)"),
    ("((tags exists) and (name exists)", 33, "missing ')' (the '(' at column 1 is not closed)"),
    ("metrics.auc > 0.9)", 18, "unmatched ')'"),
    ("()", 2, "expected a field, found ')'"),
    ("(tags exists name exists)", 14, "expected 'and', 'or' or ')'"),
    ("metrics.auc > 0.9 metrics.loss < 1", 19, "expected 'and', 'or' or the end of the query"),
    ("metrics.auc > 0.9 garbage", 19, "expected 'and', 'or' or the end of the query"),
    ("tags exists and", 16, "expected a field"),
    ("metrics.auc > 0.9and tags exists", 15, "invalid number '0.9and'"),
    ("metrics.auc > 1.2.3", 15, "invalid number"),
    ("metrics.auc > 1e999", 15, "number 1e999 is out of range"),
    ("metrics.auc > 99999999999999999999", 15, "number 99999999999999999999 is out of range"),
    ("metrics.auc > 'high'", 13, "metrics are numbers"),
    ("metrics.auc = true", 13, "metrics are numbers"),
    ("metrics.auc ~ 'x'", 13, "'~' matches text and metrics are numbers"),
    ("params.lr ~ 5", 11, "'~' matches text"),
    ("params.flag > true", 13, "'>' needs a number or a string, not a boolean"),
    ("params.flag < null", 13, "'<' needs a number or a string, not null"),
    ("tags > 'a'", 6, "tags support =, !=, ~, !~ and exists"),
    ("tags = 1", 6, "compare tags with a string"),
    ("name = 5", 6, "name is text"),
    ("status = null", 8, "status is never null"),
    ("name > null", 6, "'>' needs a number or a string, not null"),
    ("created_at > 'yesterday'", 14, "'yesterday' is not an ISO date"),
    ("created_at ~ '2024'", 12, "'~' does not apply to created_at"),
    ("status = running", 10, "expected a value after '=', found 'running' (quote text: 'running')"),
    ("params.x = `y`", 12, "backquotes are for names"),
    ("0.9 < metrics.auc", 1, "expected a field, found '0.9' (the field goes first"),
    ("metrics.a.`b` > 1", 1, "unknown field 'metrics.a.`b`'"),
    ("tags = 'a' && tags = 'b'", 12, "unexpected '&' (use 'and' / 'or')"),
    ("tags ! 'a'", 6, "unexpected '!'"),
    ("tags = 'a' ; drop table experiments", 12, "unexpected character ';'"),
    ("status is null", 8, "'is' is not supported"),
    ("tags in ('a')", 6, "'in' is not supported"),
    ("metrics.auc not > 1", 17, "expected 'exists' after 'metrics.auc not'"),
    ("and", 1, "expected a field, found 'and'"),
    ("metrics.x > ²", 13, "unexpected character '²'"),
    ("metrics.x > 1\x00", 14, "unexpected character U+0000"),
    ("name = 'a\x00'", 10, "NUL characters are not allowed"),
    ("name = '\\u0000'", 9, "\\u0000 is not allowed"),
    ("not", 4, "expected a field"),
]


@pytest.mark.parametrize(("query", "column", "message"), ERRORS)
def test_errors_point_at_the_column(query: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(query)
    error = info.value
    assert error.message.startswith(message), error.message
    assert (error.column, error.query) == (column, query)
    assert isinstance(error, ValueError)
    assert error.to_dict() == {"message": error.message, "column": column, "query": query}


def test_error_str_has_a_caret_under_the_column() -> None:
    with pytest.raises(QueryError) as info:
        parse("metrics.auc > and tags exists")
    assert str(info.value) == (
        "expected a value after '>' at column 15\n  metrics.auc > and tags exists\n                ^"
    )


def test_error_caret_stays_aligned_in_multiline_and_long_queries() -> None:
    with pytest.raises(QueryError) as info:
        parse("tags exists\n\tand metrics.x >")
    line, caret = str(info.value).splitlines()[1:]
    assert line == "  tags exists  and metrics.x >"
    assert caret.index("^") == len(line)  # just past the end: the missing value

    query = " and ".join(f"params.p{i} = {i}" for i in range(40)) + " and params.bad = = 1"
    with pytest.raises(QueryError) as info:
        parse(query)
    line, caret = str(info.value).splitlines()[1:]
    assert len(line) <= 80 and line.startswith("  …")
    assert line[caret.index("^") :].startswith("= 1")


def test_unknown_fields_get_a_list_of_the_known_ones() -> None:
    with pytest.raises(QueryError, match="fields are metrics.NAME, params.NAME, others.NAME, tags, name"):
        parse("zzz = 1")
    with pytest.raises(QueryError, match="did you mean 'status'"):
        parse("statuss = 'x'")


def test_query_length_limit() -> None:
    exact = "name = '" + "x" * (MAX_QUERY_LENGTH - 9) + "'"
    assert len(exact) == MAX_QUERY_LENGTH
    assert parse(exact) is not None
    with pytest.raises(QueryError, match="query is too long") as info:
        parse(exact + " ")
    assert info.value.column == MAX_QUERY_LENGTH + 1


def test_nesting_depth_limit() -> None:
    deep = "(" * MAX_DEPTH + "tags exists" + ")" * MAX_DEPTH
    assert parse(deep) == Exists(Field("tags", ""))
    assert parse("not " * MAX_DEPTH + "tags exists") is not None
    with pytest.raises(QueryError, match="nested too deeply") as info:
        parse("(" + deep + ")")
    assert info.value.column == MAX_DEPTH + 1
    with pytest.raises(QueryError, match="nested too deeply"):
        parse("not " * (MAX_DEPTH + 1) + "tags exists")
    with pytest.raises(QueryError, match="nested too deeply"):
        parse("not (" * 30 + "tags exists" + ")" * 30)


def test_parse_field_rejects_anything_else() -> None:
    with pytest.raises(QueryError, match="expected a single field"):
        parse_field("metrics.auc desc")
    with pytest.raises(QueryError, match="expected a field"):
        parse_field("")
    with pytest.raises(TypeError):
        parse(b"tags exists")  # type: ignore[arg-type]


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("50%_a!b") == "%50!%!_a!!b%"


# ------------------------------------------------------------------------------- compiling to SQL
# Replace by the conftest fixture (SQLite + PostgreSQL) when it exists; see the module docstring.


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'query.db'}")

    @event.listens_for(eng, "connect")
    def no_fsync(dbapi_connection: Any, _record: Any) -> None:
        # a throwaway file: durability only costs time (fsync made each test ~0.5 s)
        dbapi_connection.execute("PRAGMA synchronous = OFF")
        dbapi_connection.execute("PRAGMA journal_mode = MEMORY")

    yield eng
    eng.dispose()


DAY = 86_400_000
JAN_1_2024 = 1704067200000

# key -> attributes, params, metrics (last values; None = NaN), tags, others
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "e1": {
        "name": "baseline-lr",
        "user": "alice",
        "status": "ended",
        "created_at": JAN_1_2024,
        "params": {"lr": 0.1, "optimizer": "adam", "flag": True, "batch": 32},
        "metrics": {"auc": 0.91, "loss": 0.3, "loss/total": 1.5},
        "tags": ["baseline", "gpu"],
        "others": {"git.branch": "main"},
    },
    "e2": {
        "name": "tuned 50%_run",
        "user": "bob",
        "status": "running",
        "created_at": JAN_1_2024 + 31 * DAY,  # 2024-02-01
        "params": {"lr": 0.15, "optimizer": "sgd", "flag": "False", "batch": 64},
        "metrics": {"auc": 0.95, "loss": None},
        "tags": ["gpu", "tuned", "type-exl"],
        "others": {},
    },
    "e3": {
        "name": None,
        "user": "alice",
        "status": "ended",
        "created_at": JAN_1_2024 + 60 * DAY,  # 2024-03-01
        "params": {"lr": "auto", "optimizer": "Adagrad", "a b": 1, "nothing": None, "flag": False},
        "metrics": {"auc": 0.5},
        "tags": ["base_line"],
        "others": {},
    },
    "e4": {
        "name": "empty",
        "user": "carol",
        "status": "ended",
        "created_at": JAN_1_2024 + 91 * DAY,  # 2024-04-01
        "params": {},
        "metrics": {},
        "tags": [],
        "others": {"x": 5},
    },
}


def typed_columns(value: Any) -> dict[str, Any]:
    """value_json / value_num / value_text of a parameter, exactly as the service layer writes them."""
    return encode_value("parameter", value, 1_000_000)


@pytest.fixture
def project(engine: Engine) -> Iterator[int]:
    """A workspace and project holding EXPERIMENTS; yields the project id."""
    s = schema
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        ws = conn.execute(
            insert(s.workspaces).values(name=f"query-test-{uuid.uuid4().hex}", created_at=0)
        ).inserted_primary_key[0]
        pid = conn.execute(
            insert(s.projects).values(workspace_id=ws, name="queries", created_at=0)
        ).inserted_primary_key[0]
        for key, exp in EXPERIMENTS.items():
            eid = conn.execute(
                insert(s.experiments).values(
                    key=f"{key}-{uuid.uuid4().hex[:20]}",
                    project_id=pid,
                    name=exp["name"],
                    status=exp["status"],
                    user=exp["user"],
                    created_at=exp["created_at"],
                )
            ).inserted_primary_key[0]
            for table, values in ((s.params, exp["params"]), (s.others, exp["others"])):
                for name, value in values.items():
                    conn.execute(
                        insert(table).values(
                            experiment_id=eid, name=name, updated_at=0, **typed_columns(value)
                        )
                    )
            for name, value in exp["metrics"].items():
                conn.execute(
                    insert(s.metric_summaries).values(
                        experiment_id=eid,
                        name=name,
                        count=1,
                        last_value=value,
                        last_json=jsonvalue.dumps(
                            jsonvalue.metric_json(float("nan") if value is None else value)
                        ),
                        last_step=0,
                        last_timestamp=0,
                        chunks=1,
                    )
                )
            for tag in exp["tags"]:
                conn.execute(insert(s.tags).values(experiment_id=eid, tag=tag, created_at=0))
    yield pid
    with engine.begin() as conn:
        ids = select(s.experiments.c.id).where(s.experiments.c.project_id == pid)
        for table in (s.params, s.others, s.metric_summaries, s.tags):
            conn.execute(delete(table).where(table.c.experiment_id.in_(ids)))
        conn.execute(delete(s.experiments).where(s.experiments.c.project_id == pid))
        conn.execute(delete(s.projects).where(s.projects.c.id == pid))
        conn.execute(delete(s.workspaces).where(s.workspaces.c.id == ws))


def short(key: str) -> str:
    return key.split("-", 1)[0]


def run(engine: Engine, project_id: int, query: str) -> set[str]:
    exps = schema.experiments
    stmt = select(exps.c.key).where(exps.c.project_id == project_id, compile_where(parse(query)))
    with engine.connect() as conn:
        return {short(key) for key in conn.scalars(stmt)}


def ordered(engine: Engine, project_id: int, field: str, descending: bool) -> list[str]:
    exps = schema.experiments
    stmt = (
        select(exps.c.key)
        .where(exps.c.project_id == project_id)
        .order_by(*sort_expression(field, descending), exps.c.id)
    )
    with engine.connect() as conn:
        return [short(key) for key in conn.scalars(stmt)]


ALL = {"e1", "e2", "e3", "e4"}

# (query, keys it must return)
CASES: list[tuple[str, set[str]]] = [
    ("", ALL),
    # metrics: the last value; missing metrics never match; NaN (e2's loss) only matches !=
    ("metrics.auc > 0.9", {"e1", "e2"}),
    ("metrics.auc >= 0.95", {"e2"}),
    ("metrics.auc <= 0.5", {"e3"}),
    ("metrics.auc < 0.91", {"e3"}),
    ("metrics.auc = 0.91", {"e1"}),
    ("metrics.auc != 0.91", {"e2", "e3"}),
    ("not metrics.auc > 0.9", {"e3", "e4"}),
    ("not metrics.auc != 0.91", {"e1", "e4"}),
    ("metrics.loss < 1", {"e1"}),
    ("metrics.loss > -1", {"e1"}),
    ("metrics.loss != 0.3", {"e2"}),
    ("metrics.`loss/total` = 1.5", {"e1"}),
    ("metrics.loss/total >= 1", {"e1"}),
    ("metrics.auc exists", {"e1", "e2", "e3"}),
    ("metrics.auc not exists", {"e4"}),
    ("metrics.loss exists", {"e1", "e2"}),
    ("metrics.nope > 0 or metrics.nope <= 0", set()),
    # params: numbers vs value_num, strings vs value_text
    ("params.lr = 0.15", {"e2"}),
    ("params.lr > 0.05", {"e1", "e2"}),
    ("params.lr = 'auto'", {"e3"}),
    ("params.lr != 0.1", {"e2", "e3"}),
    ("not params.lr = 0.1", {"e2", "e3", "e4"}),
    ("params.batch = 32", {"e1"}),
    ("params.batch >= 32 and params.batch < 64", {"e1"}),
    ("params.optimizer = 'adam'", {"e1"}),
    ("params.optimizer != 'adam'", {"e2", "e3"}),
    ("params.optimizer ~ 'ADA'", {"e1", "e3"}),
    ("params.optimizer !~ 'ada'", {"e2"}),
    ("params.optimizer < 'b'", {"e1", "e3"}),
    ("params.optimizer > 'b'", {"e2"}),
    ("params.lr ~ 'au'", {"e3"}),
    # a string compares with the text form of any value: a number's JSON text too
    ("params.lr = '0.1'", {"e1"}),
    ("params.batch ~ '3'", {"e1"}),
    ("params.flag = 'true'", {"e1"}),
    ("params.lr !~ 'au'", {"e1", "e2"}),
    ("params.flag = true", {"e1"}),
    ("params.flag = false", {"e2", "e3"}),
    ("params.flag != true", {"e2", "e3"}),
    ("params.nothing = null", {"e3"}),
    ("params.nothing != null", set()),
    ("params.lr != null", {"e1", "e2", "e3"}),
    ("params.`a b` = 1", {"e3"}),
    ('params."a b" exists', {"e3"}),
    ("params.lr exists and not params.batch exists", {"e3"}),
    # others: like params
    ("others.git.branch = 'main'", {"e1"}),
    ("others.x > 4", {"e4"}),
    ("others.x exists or others.git.branch exists", {"e1", "e4"}),
    # tags: has / has not; ~ escapes LIKE wildcards
    ("tags = 'gpu'", {"e1", "e2"}),
    ("tags != 'gpu'", {"e3", "e4"}),
    ("tags = 'GPU'", set()),
    ("tags ~ 'base'", {"e1", "e3"}),
    ("tags ~ 'BASE'", {"e1", "e3"}),
    ("tags !~ 'base'", {"e2", "e4"}),
    ("tags ~ 'e_l'", {"e3"}),
    ("tags ~ '%'", set()),
    ("tags exists", {"e1", "e2", "e3"}),
    ("not tags exists", {"e4"}),
    ("tags = 'gpu' and tags = 'tuned'", {"e2"}),
    # plain fields; an unnamed experiment (e3) never matches a comparison on name
    ("name = 'empty'", {"e4"}),
    ("name != 'empty'", {"e1", "e2"}),
    ("not name = 'empty'", {"e1", "e2", "e3"}),
    ("name ~ '50%_'", {"e2"}),
    ("name ~ '%'", {"e2"}),
    ("name ~ '_'", {"e2"}),
    ("name !~ 'LR'", {"e2", "e4"}),
    ("not name ~ 'lr'", {"e2", "e3", "e4"}),
    ("name = null", {"e3"}),
    ("name != null", {"e1", "e2", "e4"}),
    ("name exists", {"e1", "e2", "e4"}),
    ("user = 'alice' and status = 'ended'", {"e1", "e3"}),
    ("status exists", ALL),
    ("created_at >= '2024-02-01'", {"e2", "e3", "e4"}),
    ("created_at < '2024-02-01T00:00:00Z'", {"e1"}),
    (f"created_at > {JAN_1_2024 + 60 * DAY}", {"e4"}),
    ("key ~ 'e1-'", {"e1"}),
    # boolean structure
    ("tags = 'gpu' or user = 'alice' and status = 'running'", {"e1", "e2"}),
    ("(tags = 'gpu' or user = 'alice') and status = 'running'", {"e2"}),
    ("not tags = 'gpu' and user = 'alice'", {"e3"}),
    ("not (tags = 'gpu' and user = 'alice')", {"e2", "e3", "e4"}),
    ("metrics.auc > 0.9 and params.lr = 0.15", {"e2"}),
    ("METRICS.auc > 0.9 AND NOT tags = 'tuned'", {"e1"}),
    # nothing the user types is SQL
    ("name = 'x\\' OR 1=1 --'", set()),
    ("params.`lr' OR '1'='1` exists", set()),
    ("tags ~ '\\'; DROP TABLE tags; --'", set()),
]


@pytest.mark.parametrize(("query", "keys"), CASES, ids=[q or "<empty>" for q, _ in CASES])
def test_query_selects(engine: Engine, project: int, query: str, keys: set[str]) -> None:
    assert run(engine, project, query) == keys


def test_empty_where_is_true(engine: Engine, project: int) -> None:
    assert run(engine, project, "   ") == ALL


def test_the_longest_and_deepest_queries_run(engine: Engine, project: int) -> None:
    term = "tags = 'gpu' and "
    wide = term * ((MAX_QUERY_LENGTH - 20) // len(term)) + "user = 'bob'"
    assert len(wide) <= MAX_QUERY_LENGTH
    assert run(engine, project, wide) == {"e2"}
    wide_or = wide.replace(" and ", " or ")
    assert run(engine, project, wide_or) == {"e1", "e2"}
    # the most bound parameters per character: two per comparison (name and value)
    term = "params.a!='x'or "
    dense = term * (MAX_QUERY_LENGTH // len(term) - 1) + "tags='tuned'"
    assert len(dense) <= MAX_QUERY_LENGTH
    assert run(engine, project, dense) == {"e2"}
    nots = MAX_DEPTH // 2 - MAX_DEPTH // 2 % 2  # an even number of "not (", two levels each
    deep = "not (" * nots + "tags = 'gpu'" + ")" * nots
    assert run(engine, project, deep) == {"e1", "e2"}


@pytest.mark.parametrize(
    ("field", "ascending", "descending"),
    [
        ("metrics.auc", ["e3", "e1", "e2", "e4"], ["e2", "e1", "e3", "e4"]),
        # NaN (e2's loss) sorts with the missing values
        ("metrics.loss", ["e1", "e2", "e3", "e4"], ["e1", "e2", "e3", "e4"]),
        # numbers first, then text values, then experiments without the parameter
        ("params.lr", ["e1", "e2", "e3", "e4"], ["e2", "e1", "e3", "e4"]),
        ("params.optimizer", ["e3", "e1", "e2", "e4"], ["e2", "e1", "e3", "e4"]),
        ("params.`a b`", ["e3", "e1", "e2", "e4"], ["e3", "e1", "e2", "e4"]),
        ("others.x", ["e4", "e1", "e2", "e3"], ["e4", "e1", "e2", "e3"]),
        ("name", ["e1", "e4", "e2", "e3"], ["e2", "e4", "e1", "e3"]),
        ("created_at", ["e1", "e2", "e3", "e4"], ["e4", "e3", "e2", "e1"]),
        ("status", ["e1", "e3", "e4", "e2"], ["e2", "e1", "e3", "e4"]),
    ],
)
def test_sort_expression(
    engine: Engine, project: int, field: str, ascending: list[str], descending: list[str]
) -> None:
    assert ordered(engine, project, field, descending=False) == ascending
    assert ordered(engine, project, field, descending=True) == descending


def test_sort_expression_accepts_a_field_and_rejects_tags() -> None:
    assert len(sort_expression(Field("params", "lr"), True)) == 2
    with pytest.raises(QueryError, match="cannot sort by tags"):
        sort_expression("tags", False)
    with pytest.raises(QueryError, match="unknown field"):
        sort_expression("metric.auc", False)


def test_values_are_bound_parameters() -> None:
    stmt = select(schema.experiments.c.id).where(
        compile_where(parse("params.`p' --` = 'v\\' or 1=1' and tags ~ 'x%' and metrics.m > 0.5"))
    )
    sql = str(stmt.compile())
    for fragment in ("p'", "v'", "or 1=1", "x%", "0.5"):
        assert fragment not in sql
    assert set(stmt.compile().params.values()) >= {"p' --", "v' or 1=1", "%x!%%", 0.5}


def test_sqlite_plan_uses_the_name_value_indexes(engine: Engine, project: int) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    exps = schema.experiments
    where = compile_where(parse("params.lr = 0.15 and metrics.auc > 0.9 and tags = 'gpu'"))
    stmt = select(exps.c.key).where(exps.c.project_id == project, where)
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        details = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    for index in ("ix_params_name_num", "ix_metric_summaries_name_last", "ix_tags_tag"):
        assert index in details, details


def test_the_schema_has_the_indexes_the_compiler_relies_on(engine: Engine) -> None:
    schema.metadata.create_all(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index'")))
        else:
            names = set(conn.scalars(text("SELECT indexname FROM pg_indexes")))
    assert {"ix_params_name_num", "ix_metric_summaries_name_last", "ix_tags_tag"} <= names
