"""Shared fixtures: a fresh store per test on SQLite and on a real PostgreSQL server the session
starts itself (tests/pgserver.py), an isolated embedded home, and an in-process API client."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # tests/ is on sys.path (pytest's default "prepend" import mode, no tests/__init__.py)
    from pgserver import REQUIRE_ENV, PostgresServer, required_by_env, unavailable_reason
    from s3server import s3_server  # noqa: F401 - a session fixture: a real `rclone serve s3`
except ModuleNotFoundError:  # pragma: no cover - tests/ imported as a package
    from tests.pgserver import REQUIRE_ENV, PostgresServer, required_by_env, unavailable_reason
    from tests.s3server import s3_server  # noqa: F401

from tallymark.settings import Settings


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    reason = unavailable_reason()
    if reason is not None:
        if required_by_env():
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL server can be started: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {reason} (set {REQUIRE_ENV}=1 to make this an error)")
    server = PostgresServer()
    request.addfinalizer(server.stop)  # registered first: also cleans up a half-started server
    server.start()
    return server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.postgres])])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in tmp_path, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        # Collect leaked connections while their database still exists (see tests/pgserver.py).
        gc.collect()
        server.drop_database(name)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db_url=db_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[object]:
    from tallymark.service.store import open_store

    s = open_store(settings)
    yield s
    s.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated embedded home for the SDK (no TALLYMARK_URL)."""
    h = tmp_path / "tmhome"
    monkeypatch.setenv("TALLYMARK_HOME", str(h))
    monkeypatch.delenv("TALLYMARK_URL", raising=False)
    monkeypatch.setenv("TALLYMARK_USER", "alice")
    return h


@pytest.fixture
def client(tmp_path: Path) -> Iterator[object]:
    """An in-process client of the REST API over a fresh SQLite store."""
    from fastapi.testclient import TestClient

    from tallymark.server.app import create_app

    app = create_app(
        Settings(home=tmp_path / "srv", max_body_bytes=8 * 1024 * 1024, max_asset_bytes=16 * 1024 * 1024)
    )
    with TestClient(app, base_url="http://127.0.0.1") as c:  # a loopback Host, as --no-auth needs
        yield c


def new_key() -> str:
    return uuid.uuid4().hex


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never let a developer's TALLYMARK_URL send test data to a real server.
    if os.environ.get("TALLYMARK_URL"):
        monkeypatch.delenv("TALLYMARK_URL")
