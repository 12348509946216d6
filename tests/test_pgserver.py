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
import tempfile
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
if "--no-pdeathsig" in sys.argv:  # simulate a platform without parent-death signals
    pgserver.parent_death_preexec = lambda sig: None
base = sys.argv[sys.argv.index("--base") + 1] if "--base" in sys.argv else None
pg = pgserver.PostgresServer(base_dir=base).start()
print(json.dumps({{"port": pg.port, "pid": pg.pid, "launcher": pg._proc.pid,
                  "tmpdir": str(pg.tmpdir), "url": pg.url}}), flush=True)
sys.stdin.readline()
pg.stop()
print("stopped", flush=True)
"""


def _start_child_session(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """Another Python process (a second "test session") that runs its own server."""
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _read_info(child: subprocess.Popen[str]) -> dict:
    line = child.stdout.readline()
    assert line, f"child session failed to start a server (rc={child.wait(10)})"
    return json.loads(line)


def _cleanup(children: list[subprocess.Popen[str]], infos: list[dict]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
    for info in infos:
        for pid in (info["pid"], info["launcher"]):
            if _pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(info["tmpdir"], ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_concurrent_sessions_do_not_collide(tmp_path):
    children = [_start_child_session(tmp_path) for _ in range(2)]
    infos: list[dict] = []
    try:
        infos = [_read_info(child) for child in children]
        assert len({info["port"] for info in infos}) == 2
        assert len({info["tmpdir"] for info in infos}) == 2
        for info in infos:
            assert _scalar(info["url"], "SHOW port") == str(info["port"])
        for child in children:
            out, _ = child.communicate("\n", timeout=60)
            assert "stopped" in out and child.returncode == 0
        for info in infos:
            assert not _pid_exists(info["pid"])
            assert not Path(info["tmpdir"]).exists()
    finally:
        _cleanup(children, infos)


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_killed_sessions_leave_no_server_and_stale_dirs_are_swept(tmp_path):
    # One session as usual, one as if parent-death signals did not exist (an orphan is left). Both
    # under a base folder of their own: any other test session on this machine sweeps stale folders
    # of the shared temp dir at its start, and would stop the orphan before this test looks at it.
    private = Path(tempfile.mkdtemp(prefix="tallymark-pg-sweep-test-", dir=pgserver._default_base_dir()))
    private.chmod(0o755)  # the postgres OS user must reach its data directory inside
    children = [
        _start_child_session(tmp_path, "--base", str(private)),
        _start_child_session(tmp_path, "--no-pdeathsig", "--base", str(private)),
    ]
    infos: list[dict] = []
    try:
        infos = [_read_info(child) for child in children]
        normal, orphan = infos
        base = Path(normal["tmpdir"]).parent
        for child in children:
            child.kill()  # SIGKILL: no finalizers, no atexit
            child.wait()
        assert _wait_until(lambda: not _pid_exists(normal["pid"])), "postmaster outlived its session"
        time.sleep(0.2)
        assert _pid_exists(orphan["pid"]), "expected an orphaned postmaster"
        assert Path(normal["tmpdir"]).exists() and Path(orphan["tmpdir"]).exists()

        # What the next run's start() does: stop the orphan, remove both directories.
        removed = pgserver.sweep_stale_dirs(base)
        assert base == private
        assert {Path(normal["tmpdir"]), Path(orphan["tmpdir"])} <= set(removed)
        assert not _pid_exists(orphan["pid"])
        assert not Path(normal["tmpdir"]).exists() and not Path(orphan["tmpdir"]).exists()
    finally:
        _cleanup(children, infos)
        shutil.rmtree(private, ignore_errors=True)


def test_sweep_keeps_live_and_young_dirs_and_removes_dead_ones(tmp_path):
    base = tmp_path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_owner = base / f"{pgserver.DIR_PREFIX}dead-owner"
    (dead_owner / "data").mkdir(parents=True)
    (dead_owner / "owner").write_text(f"{dead.pid} 0\n")
    live_owner = base / f"{pgserver.DIR_PREFIX}live-owner"
    live_owner.mkdir()
    (live_owner / "owner").write_text(f"{os.getpid()}\n")
    old_no_owner = base / f"{pgserver.DIR_PREFIX}old-no-owner"
    old_no_owner.mkdir()
    old = time.time() - 3600
    os.utime(old_no_owner, (old, old))
    young_no_owner = base / f"{pgserver.DIR_PREFIX}young-no-owner"  # may be mid-creation
    young_no_owner.mkdir()
    unrelated = base / "something-else"
    unrelated.mkdir()

    removed = pgserver.sweep_stale_dirs(base)

    assert sorted(removed) == sorted([dead_owner, old_no_owner])
    assert live_owner.exists() and young_no_owner.exists() and unrelated.exists()
