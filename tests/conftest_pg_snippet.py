"""PostgreSQL fixtures, to be merged into tests/conftest.py (this file itself is not a conftest).

* ``pg_server`` (session): one throw-away server per test session (per xdist worker).  Skipped with
  the reason when the binaries are missing, unless ``TALLYMARK_REQUIRE_POSTGRES=1`` (CI), in which
  case the tests using it fail.  Stopped by a finalizer at session end, whatever the test outcome;
  ``PostgresServer.start()`` also registers an ``atexit`` hook and a parent-death signal, so no
  postgres process outlives the interpreter.
* ``db_url`` (function, parametrized ``sqlite`` / ``postgresql``): a fresh, empty database URL for
  each test.  The postgresql variant creates a uniquely named database on the session server and
  drops it afterwards (``WITH (FORCE)``, so connections leaked by the test do not block it).  It is
  marked ``slow`` and ``postgres``; ``-m "not slow"`` runs the sqlite variant only.
"""

from __future__ import annotations

import uuid

import pytest

try:  # tests/ itself is on sys.path (pytest's default "prepend" import mode, no tests/__init__.py)
    from pgserver import REQUIRE_ENV, PostgresServer, required_by_env, unavailable_reason
except ModuleNotFoundError:  # tests/ is a package
    from tests.pgserver import REQUIRE_ENV, PostgresServer, required_by_env, unavailable_reason


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    reason = unavailable_reason()
    if reason is not None:
        if required_by_env():
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL server can be started: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {reason} (set {REQUIRE_ENV}=1 to make this an error)")
    server = PostgresServer()
    request.addfinalizer(server.stop)  # registered first: also cleans up a half-started server
    server.start()  # raises PostgresServerError with the server log tail if it cannot start
    return server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.postgres])])
def db_url(request: pytest.FixtureRequest, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
