"""Tests for the throw-away PostgreSQL server used by the test-suite (tests/pgserver.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

try:  # tests/ itself is on sys.path (pytest's default "prepend" import mode, no tests/__init__.py)
    import pgserver
except ModuleNotFoundError:  # tests/ is a package
    from tests import pgserver

TESTS_DIR = Path(pgserver.__file__).resolve().parent

needs_postgres = pytest.mark.skipif(
    not pgserver.available() and not pgserver.required_by_env(),
    reason=f"{pgserver.unavailable_reason()} (set {pgserver.REQUIRE_ENV}=1 to make this an error)",
)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _scalar(url: str, query: str):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_unavailable_when_bindir_override_is_bogus(monkeypatch, tmp_path):
    monkeypatch.setenv(pgserver.BINDIR_ENV, str(tmp_path / "nowhere"))
    assert pgserver.find_bindir() is None
    assert not pgserver.available()
    assert "not found" in pgserver.unavailable_reason()
    with pytest.raises(pgserver.PostgresServerError, match="not found"):
        pgserver.PostgresServer().start()


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("", False), ("0", False), (None, False)]
)
def test_required_by_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(pgserver.REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(pgserver.REQUIRE_ENV, value)
    assert pgserver.required_by_env() is expected


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_lifecycle_two_databases_and_cleanup():
    # Make the first port we try busy, so start-up has to retry on "address in use".
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    picked: list[int] = []

    server = pgserver.PostgresServer()
    real_pick = server._pick_port

    def pick_port() -> int:
        picked.append(real_pick() if picked else busy_port)
        return picked[-1]

    server._pick_port = pick_port
    try:
        with server as pg:
            busy.close()
            assert len(picked) == 2 and pg.port == picked[1] != busy_port
            assert re.fullmatch(r"postgresql\+psycopg://postgres@127\.0\.0\.1:\d+/postgres", pg.url)
            assert pg.url.endswith(f":{pg.port}/postgres")
            print(f"\npostgres start-up: {pg.timings}")
            assert pg.startup_seconds is not None and pg.startup_seconds < 30

            tmpdir, pid, runuser_pid = pg.tmpdir, pg.pid, pg._proc.pid
            assert tmpdir.is_dir() and tmpdir.name.startswith(pgserver.DIR_PREFIX)
            assert pid is not None and _pid_exists(pid)

            assert _scalar(pg.url, "SELECT 1") == 1
            assert _scalar(pg.url, "SHOW listen_addresses") == "127.0.0.1"
            assert _scalar(pg.url, "SHOW fsync") == "off"
            assert _scalar(pg.url, "SHOW synchronous_commit") == "off"
            assert _scalar(pg.url, "SHOW full_page_writes") == "off"
            assert _scalar(pg.url, "SELECT current_user") == "postgres"

            url_a = pg.create_database("tally_a")
            url_b = pg.create_database("tally_b")
            assert url_a == pg.url_for("tally_a") and url_a.endswith("/tally_a")
            assert url_b.endswith("/tally_b")
            auto = pg.create_database()
            assert re.search(r"/t_[0-9a-f]{16}$", auto)

            engine_a = sa.create_engine(url_a)
            with engine_a.begin() as conn:
                conn.execute(sa.text("CREATE TABLE runs (id serial PRIMARY KEY, name text NOT NULL)"))
                conn.execute(sa.text("INSERT INTO runs (name) VALUES ('r1'), ('r2')"))
            assert _scalar(url_a, "SELECT count(*) FROM runs") == 2
            assert _scalar(url_a, "SELECT current_database()") == "tally_a"
            assert _scalar(url_b, "SELECT current_database()") == "tally_b"
            # The databases are isolated from each other.
            assert _scalar(url_b, "SELECT count(*) FROM pg_tables WHERE tablename = 'runs'") == 0

            with pytest.raises(ValueError):
                pg.create_database('x"; DROP DATABASE postgres; --')

            # A connection left open (e.g. a leaked pool) does not block dropping the database.
            leaked = engine_a.connect()
            leaked.execute(sa.text("SELECT 1"))
            pg.drop_database("tally_a")
            pg.drop_database("tally_b")
            pg.drop_database("tally_b")  # IF EXISTS: idempotent
            leaked.invalidate()
            engine_a.dispose()
            names = _scalar(pg.url, "SELECT string_agg(datname, ',') FROM pg_database")
            assert "tally_a" not in names and "tally_b" not in names
    finally:
        busy.close()
        server.stop()

    assert not server.running
    assert not _pid_exists(pid), "postmaster still running after stop()"
    assert not _pid_exists(runuser_pid), "launcher process still around after stop()"
    assert not tmpdir.exists(), "temp dir not removed by stop()"
    server.stop()  # idempotent
    with pytest.raises(pgserver.PostgresServerError):
        _ = server.url


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_failed_start_raises_with_log_tail_and_cleans_up():
    server = pgserver.PostgresServer(settings={"shared_buffers": "not-a-size"})
    with pytest.raises(pgserver.PostgresServerError, match="shared_buffers") as excinfo:
        server.start()
    assert "exited with code" in str(excinfo.value)
    assert server.tmpdir is None and not server.running


CHILD_SCRIPT = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import pgserver
if "--no-pdeathsig" in sys.argv:
    pgserver._parent_death_preexec = lambda sig: None
pg = pgserver.PostgresServer().start()
print(json.dumps({{"port": pg.port, "pid": pg.pid, "launcher": pg._proc.pid,
                  "tmpdir": str(pg.tmpdir), "url": pg.url}}), flush=True)
sys.stdin.readline()
pg.stop()
print("stopped", flush=True)
"""


def _start_child_sessions(tmp_path: Path, *args: str, count: int = 1) -> list[subprocess.Popen[str]]:
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    return [
        subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def _read_info(child: subprocess.Popen[str]) -> dict:
    line = child.stdout.readline()
    assert line, f"child session failed to start a server (rc={child.wait(10)})"
    return json.loads(line)


def _force_cleanup(infos: list[dict]) -> None:
    for info in infos:
        for pid in (info["pid"], info["launcher"]):
            if _pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_concurrent_sessions_do_not_collide(tmp_path):
    children = _start_child_sessions(tmp_path, count=3)
    infos: list[dict] = []
    try:
        infos = [_read_info(child) for child in children]
        assert len({info["port"] for info in infos}) == 3
        assert len({info["tmpdir"] for info in infos}) == 3
        for info in infos:
            assert _scalar(info["url"], "SHOW port") == str(info["port"])
        for child in children:
            out, _ = child.communicate("\n", timeout=60)
            assert "stopped" in out and child.returncode == 0
        for info in infos:
            assert not _pid_exists(info["pid"])
            assert not Path(info["tmpdir"]).exists()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        _force_cleanup(infos)


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_killed_session_server_dies_with_it(tmp_path):
    (child,) = _start_child_sessions(tmp_path)
    infos: list[dict] = []
    try:
        infos.append(_read_info(child))
        child.kill()  # SIGKILL: no finalizers, no atexit
        child.wait()
        assert _wait_until(lambda: not _pid_exists(infos[0]["pid"])), "postmaster outlived its session"
        # Its directory is stale now and the next sweep removes it.
        stale = Path(infos[0]["tmpdir"])
        assert stale.exists()
        assert stale in pgserver.sweep_stale_dirs(stale.parent)
        assert not stale.exists()
    finally:
        _force_cleanup(infos)


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_sweep_stops_orphaned_server_and_removes_stale_dirs(tmp_path):
    (child,) = _start_child_sessions(tmp_path, "--no-pdeathsig")
    infos: list[dict] = []
    base = None
    try:
        infos.append(_read_info(child))
        orphan = Path(infos[0]["tmpdir"])
        base = orphan.parent
        child.kill()
        child.wait()
        time.sleep(0.2)
        assert _pid_exists(infos[0]["pid"]), "expected an orphaned postmaster"
        # A fresh server in the meantime works fine next to the orphan ...
        with pgserver.PostgresServer() as pg:
            assert _scalar(pg.url, "SELECT 2") == 2
            # ... and a sweep run now leaves the live session's directory alone.
            assert pg.tmpdir not in pgserver.sweep_stale_dirs(base)
            assert pg.tmpdir.exists()
        assert _wait_until(lambda: not _pid_exists(infos[0]["pid"])), "orphan not stopped by the sweep"
        assert not orphan.exists()
    finally:
        _force_cleanup(infos)

    # Leftovers of killed runs without any server: dead owner, or no owner file and old.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = base / f"{pgserver.DIR_PREFIX}test-dead-owner"
    (leftover / "data").mkdir(parents=True, exist_ok=True)
    (leftover / "owner").write_text(f"{dead.pid} 0\n")
    no_owner = base / f"{pgserver.DIR_PREFIX}test-no-owner"
    no_owner.mkdir(exist_ok=True)
    old = time.time() - 3600
    os.utime(no_owner, (old, old))
    young = base / f"{pgserver.DIR_PREFIX}test-young"
    young.mkdir(exist_ok=True)
    try:
        removed = pgserver.sweep_stale_dirs(base)
        assert leftover in removed and no_owner in removed
        assert young.exists(), "a directory that may be mid-creation must be kept"
    finally:
        for path in (leftover, no_owner, young):
            shutil.rmtree(path, ignore_errors=True)
