"""The operations are listed once (service/operations.py); the SDK's transports and the REST routes
are checked against that list, so a call or route without a listed operation fails here."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path
from typing import Any

from tallymark.sdk import transport
from tallymark.sdk.ops import METHODS, TRANSPORT_OPERATIONS
from tallymark.service.operations import OPERATIONS
from tallymark.settings import Settings


def _class(name: str) -> ast.ClassDef:
    tree = ast.parse(inspect.getsource(transport))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _dispatch_keys(fn: ast.FunctionDef) -> set[str]:
    """The ``op`` values a ``read(op, ...)`` / ``call(op, ...)`` accepts: string constants compared
    with ``op`` (``op == "x"``) and the keys of the dicts looked up by ``op`` (``table[op]``,
    ``op in paths``)."""
    keys: set[str] = set()
    by_op: set[str] = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Compare) and isinstance(n.left, ast.Name) and n.left.id == "op":
            for op, right in zip(n.ops, n.comparators, strict=True):
                if isinstance(op, ast.Eq) and isinstance(right, ast.Constant):
                    keys.add(right.value)
                if isinstance(op, ast.In) and isinstance(right, ast.Name):
                    by_op.add(right.id)
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Name) and n.slice.id == "op":
            if isinstance(n.value, ast.Name):
                by_op.add(n.value.id)
    for n in ast.walk(fn):
        target = None
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            target, value = n.targets[0].id, n.value
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None:
            target, value = n.target.id, n.value
        if target in by_op and isinstance(value, ast.Dict):
            keys |= {k.value for k in value.keys if isinstance(k, ast.Constant)}
    return keys


def offered(cls_name: str) -> set[str]:
    """Every call a transport offers: its public call methods, read() keys and call() keys."""
    cls = _class(cls_name)
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    out = {m for m in METHODS if m in methods}
    for dispatcher in ("read", "call"):
        out |= _dispatch_keys(methods[dispatcher])
    return out


def test_every_transport_call_names_a_listed_operation():
    unknown = {k: v for k, v in TRANSPORT_OPERATIONS.items() if v not in OPERATIONS}
    assert unknown == {}


def test_both_transports_offer_exactly_the_mapped_calls():
    local, http = offered("LocalTransport"), offered("HttpTransport")
    assert local - http == set(), "only LocalTransport offers these"
    assert http - local == set(), "only HttpTransport offers these"
    assert local == set(TRANSPORT_OPERATIONS), (
        f"not mapped: {sorted(local - set(TRANSPORT_OPERATIONS))}; "
        f"mapped but offered by neither: {sorted(set(TRANSPORT_OPERATIONS) - local)}"
    )


def test_the_introspection_sees_a_key_one_transport_lacks():
    read = ast.parse(textwrap.dedent(inspect.getsource(transport.HttpTransport.read))).body[0]
    assert isinstance(read, ast.FunctionDef)
    keys = _dispatch_keys(read)
    assert {"experiment", "params", "metric_many", "items"} <= keys
    read.body.insert(0, ast.parse('if op == "only_here":\n    pass').body[0])
    assert "only_here" in _dispatch_keys(read)


def _app() -> Any:
    from tallymark.server.app import create_app

    app = create_app(Settings(home=Path("/nonexistent-never-opened")), warm_after=None)
    while not hasattr(app, "warm"):
        app = app.app
    return app


def route_operations(sub_apps: Any) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(method, path, declared operations, endpoint module) for every route, through included
    routers (whose ``dependencies=`` count for their routes), like ``permissions.route_permissions``."""
    from tallymark.server.permissions import BUILTIN, walk_routes

    return [
        (r.method, r.path, r.need.operations if r.need else (), getattr(r.endpoint, "__module__", ""))
        for r in walk_routes(sub_apps)
        if r.path not in BUILTIN
    ]


# The route modules converted to operation names so far (the tracking half of issue 9's seam).
CONVERTED = (
    "tallymark.server.routes.experiments",
    "tallymark.server.routes.reads",
    "tallymark.server.routes.panels",
    "tallymark.server.routes.health",
    "tallymark.server.ui.routes",
)


def test_tracking_routes_declare_listed_operations():
    app = _app()
    routes = route_operations([app.api, app.ui.get()])
    ours = [(m, p, ops) for m, p, ops, mod in routes if mod in CONVERTED]
    assert len(ours) > 20, ours
    bare = [(m, p) for m, p, ops in ours if not ops]
    assert bare == []
    assert {o for _, _, ops in ours for o in ops} <= set(OPERATIONS)


def test_every_route_declares_a_listed_operation():
    app = _app()
    routes = route_operations([app.api, app.comet.get(), app.ui.get()])
    assert len(routes) > 200, len(routes)
    undeclared = [(m, p) for m, p, ops, _ in routes if not ops]
    assert undeclared == []
    assert {o for _, _, ops, _ in routes for o in ops} <= set(OPERATIONS)
