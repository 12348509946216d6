"""A throw-away PostgreSQL server for the test-suite.

``PostgresServer`` runs ``initdb`` into a fresh temporary directory and starts ``postgres`` in the
foreground, listening only on 127.0.0.1 on a free port, tuned for speed (no fsync) and with trust
authentication.  When the process runs as root (initdb refuses root) both binaries run as the
``postgres`` OS user through ``runuser``; otherwise they run as the current user.

Robustness:

* every server lives in its own ``mkdtemp`` directory, so concurrent sessions never share files;
  the port is picked by binding to port 0 and start-up is retried with a new port on
  "address in use" (the readiness probe also checks ``data_directory`` so it can never mistake
  another session's server for ours);
* ``stop()`` is idempotent, is registered with ``atexit``, and (Linux, main thread) the server is
  started with a parent-death signal so it goes away even if the test process is SIGKILLed;
* directories left behind by killed runs are swept on the next ``start()`` (a still-running
  orphaned postmaster in such a directory is shut down first).

Environment overrides: ``TALLYMARK_PG_BINDIR`` (directory holding initdb/postgres; if set, no other
location is tried), ``TALLYMARK_PG_OS_USER`` (OS user when running as root, default ``postgres``).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

try:  # tests/ is on sys.path (pytest's default "prepend" import mode)
    from procutil import env_flag, free_port, parent_death_preexec, pid_alive
except ModuleNotFoundError:  # pragma: no cover - tests/ imported as a package
    from tests.procutil import env_flag, free_port, parent_death_preexec, pid_alive

__all__ = [
    "DIR_PREFIX",
    "PostgresServer",
    "PostgresServerError",
    "available",
    "find_bindir",
    "required_by_env",
    "unavailable_reason",
]

DIR_PREFIX = "tallymark-pg-"
REQUIRE_ENV = "TALLYMARK_REQUIRE_POSTGRES"
BINDIR_ENV = "TALLYMARK_PG_BINDIR"
OS_USER_ENV = "TALLYMARK_PG_OS_USER"
SUPERUSER = "postgres"

_OWNER_FILE = "owner"
_STALE_GRACE_SECONDS = 120.0  # a dir without an owner file younger than this may be mid-creation
_DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ADDR_IN_USE_MARKERS = ("Address already in use", "could not create any TCP/IP sockets")

# Settings passed on the postgres command line (initdb in PG 15 has no -c).
DEFAULT_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "jit": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "logging_collector": "off",
}


class PostgresServerError(RuntimeError):
    """The server could not be initialised, started or stopped."""


class _PortInUse(PostgresServerError):
    pass


# --------------------------------------------------------------------------------------------
# discovery


def _has_server_binaries(bindir: str | os.PathLike[str]) -> bool:
    return all(os.access(os.path.join(bindir, exe), os.X_OK) for exe in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    name = os.path.basename(os.path.dirname(path))  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``, or None.

    Order: ``$TALLYMARK_PG_BINDIR`` (exclusive if set), the newest ``/usr/lib/postgresql/*/bin``,
    ``pg_config --bindir``, then ``initdb`` on ``PATH``.
    """
    override = os.environ.get(BINDIR_ENV)
    if override:
        return Path(override) if _has_server_binaries(override) else None
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server_binaries(candidate):
            return Path(candidate)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_server_binaries(out):
                return Path(out)
    initdb = shutil.which("initdb")
    if initdb and _has_server_binaries(os.path.dirname(initdb)):
        return Path(os.path.dirname(initdb))
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _os_user() -> str:
    return os.environ.get(OS_USER_ENV) or "postgres"


def unavailable_reason() -> str | None:
    """Why a server cannot be started here, or None if it can."""
    if find_bindir() is None:
        where = os.environ.get(BINDIR_ENV) or "/usr/lib/postgresql/*/bin, pg_config --bindir, PATH"
        return f"PostgreSQL server binaries (initdb, postgres) not found in {where}"
    if _is_root():
        import pwd

        try:
            pwd.getpwnam(_os_user())
        except KeyError:
            return f"running as root but there is no {_os_user()!r} OS user to run initdb/postgres as"
    return None


def available() -> bool:
    """True if a server can be started (binaries found, and a non-root OS user when root)."""
    return unavailable_reason() is None


def required_by_env() -> bool:
    """True if ``TALLYMARK_REQUIRE_POSTGRES`` asks for missing binaries to be an error, not a skip."""
    return env_flag(REQUIRE_ENV)


# --------------------------------------------------------------------------------------------
# process helpers


def _proc_start_ticks(pid: int) -> str | None:
    """Process start time (clock ticks since boot) from /proc, to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _proc_cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _clean_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) from the caller must not leak into the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_MESSAGES"] = "C"
    return env


def _tail(path: Path, lines: int = 40, start: int = 0) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read().decode(errors="replace")
    except OSError:
        return "<no server log>"
    return "\n".join(data.splitlines()[-lines:]) or "<server log is empty>"


# --------------------------------------------------------------------------------------------
# stale directories


def _owner_alive(owner_file: Path) -> bool | None:
    """True/False if the owning process is (not) alive; None if the owner file is unreadable."""
    try:
        fields = owner_file.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return False
    recorded = fields[1] if len(fields) > 1 else None
    current = _proc_start_ticks(pid)
    if recorded and current and recorded != current:
        return False  # the pid was reused by an unrelated process
    return True


def _kill_orphan_postmaster(data_dir: Path) -> bool:
    """Shut down a postmaster left running in ``data_dir``. False if one may still be running."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return True
    if not pid_alive(pid):
        return True
    cmdline = _proc_cmdline(pid)
    if cmdline is None or str(data_dir) not in cmdline:
        # Cannot prove the pid is that postmaster (pid reuse, or no /proc): leave it alone.
        return cmdline is not None
    for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # another user's server: not ours to stop
        if _wait_gone(pid, wait):
            return True
    return False


def sweep_stale_dirs(base: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove server directories whose owning test process is gone; returns the removed ones."""
    removed = []
    base = Path(base or tempfile.gettempdir())
    for path in base.glob(DIR_PREFIX + "*"):
        try:
            if not path.is_dir() or path.is_symlink():
                continue
            alive = _owner_alive(path / _OWNER_FILE)
            if alive is None:
                alive = time.time() - path.stat().st_mtime < _STALE_GRACE_SECONDS
            if alive:
                continue
            if not _kill_orphan_postmaster(path / "data"):
                continue
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------------------------
# the server


class PostgresServer:
    """A private PostgreSQL server in a temporary directory.

    >>> with PostgresServer() as pg:
    ...     url = pg.create_database("t1")   # postgresql+psycopg://postgres@127.0.0.1:PORT/t1
    """

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        port_attempts: int = 5,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._bindir = Path(bindir) if bindir else None
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.startup_timeout = startup_timeout
        self.port_attempts = port_attempts
        self._base_dir = Path(base_dir) if base_dir else None
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self.pid: int | None = None  # postmaster pid
        self.timings: dict[str, float] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh = None
        self._log_offset = 0
        self._atexit_registered = False

    # ---- public API --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path:
        return self._require_tmpdir() / "data"

    @property
    def log_path(self) -> Path:
        return self._require_tmpdir() / "postgres.log"

    @property
    def startup_seconds(self) -> float | None:
        """Wall time of the last successful start(): initdb plus waiting for readiness."""
        return self.timings.get("total")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self._require_port()}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq/psycopg connection string (for ``psycopg.connect``)."""
        return f"host={self.host} port={self._require_port()} user={self.user} dbname={dbname}"

    def start(self) -> PostgresServer:
        if self.running:
            return self
        reason = unavailable_reason() if self._bindir is None else None
        if reason:
            raise PostgresServerError(reason)
        bindir = self._bindir or find_bindir()
        assert bindir is not None
        self._bindir = bindir
        base = self._base_dir or _default_base_dir()
        sweep_stale_dirs(base)
        t0 = time.monotonic()
        self._register_atexit()
        try:
            self._make_tmpdir(base)
            self._initdb()
            t1 = time.monotonic()
            self._start_postmaster()
        except BaseException:
            self.stop()
            raise
        t2 = time.monotonic()
        self.timings = {"initdb": t1 - t0, "postmaster": t2 - t1, "total": t2 - t0}
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down (fast shutdown, escalating) and delete its directory. Idempotent."""
        try:
            self._stop_process(timeout)
        finally:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL (a unique name if None)."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        # FILE_COPY (PG 15+) beats the default WAL_LOG for small databases when fsync is off.
        self._execute_admin("CREATE DATABASE {}", name, pg15_suffix=" STRATEGY FILE_COPY")
        return self.url_for(name)

    def drop_database(self, name: str, *, force: bool = True) -> None:
        """Drop a database if it exists; ``force`` terminates connections still open to it.

        Run ``gc.collect()`` first when the database was used by a test: connections it leaked (an
        engine never disposed) are then returned while the database still exists.  Killed by the
        forced drop instead, SQLAlchemy logs a traceback whenever the GC finalizes them later, and if
        that happens inside pytest's own ``ast.parse`` (rendering a failure), CPython 3.11.7 raises
        "SystemError: AST constructor recursion depth mismatch", an INTERNALERROR for the whole run.
        """
        self._execute_admin("DROP DATABASE IF EXISTS {}" + (" WITH (FORCE)" if force else ""), name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port} pid={self.pid}" if self.running else "stopped"
        return f"<PostgresServer {state}>"

    # ---- internals ---------------------------------------------------------------------------

    def _require_tmpdir(self) -> Path:
        if self.tmpdir is None:
            raise PostgresServerError("server has not been started")
        return self.tmpdir

    def _require_port(self) -> int:
        if self.port is None or not self.running:
            raise PostgresServerError("server is not running")
        return self.port

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _as_postgres_user(self) -> tuple[list[str], dict[str, object]]:
        """Command prefix and Popen kwargs that run a binary as the postgres OS user (if root)."""
        if not _is_root():
            return [], {}
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
        )
        if runuser:
            return [runuser, "-u", _os_user(), "--"], {}
        import pwd

        pw = pwd.getpwnam(_os_user())
        return [], {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _make_tmpdir(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.tmpdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=base))
        (self.tmpdir / _OWNER_FILE).write_text(f"{os.getpid()} {_proc_start_ticks(os.getpid()) or ''}\n")
        self._log_fh = open(self.log_path, "ab")  # closed in stop()
        if _is_root():
            import pwd

            pw = pwd.getpwnam(_os_user())
            for path in (self.tmpdir, self.log_path):
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def _initdb(self) -> None:
        prefix, kwargs = self._as_postgres_user()
        cmd = [
            *prefix,
            str(self._bindir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]
        assert self._log_fh is not None
        self._log_fh.write(b"$ " + " ".join(cmd).encode() + b"\n")
        self._log_fh.flush()
        offset = self.log_path.stat().st_size
        try:
            subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                env=_clean_env(),
                timeout=120,
                check=True,
                **kwargs,  # type: ignore[arg-type]
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise PostgresServerError(
                f"initdb failed ({exc}); log {self.log_path}:\n{_tail(self.log_path, start=offset)}"
            ) from exc
        # Only TCP from localhost (plus the private unix socket), no password.
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# written by tests/pgserver.py\nlocal all all trust\nhost  all all 127.0.0.1/32 trust\n"
        )

    def _socket_dir(self) -> str:
        tmpdir = str(self._require_tmpdir())
        # sun_path is 108 bytes; "/.s.PGSQL.65535" needs 15 of them.
        return tmpdir if len(tmpdir.encode()) <= 90 else ""

    def _start_postmaster(self) -> None:
        last_error: PostgresServerError | None = None
        for _ in range(max(1, self.port_attempts)):
            port = self._pick_port()
            try:
                self._spawn(port)
                self._wait_ready(port)
            except _PortInUse as exc:
                last_error = exc
                self._stop_process(timeout=10)
                continue
            except BaseException:
                self._stop_process(timeout=10)
                raise
            self.port = port
            return
        raise PostgresServerError(f"no free port after {self.port_attempts} attempts: {last_error}")

    def _pick_port(self) -> int:
        return free_port(self.host)

    def _spawn(self, port: int) -> None:
        prefix, kwargs = self._as_postgres_user()
        settings = {
            **self.settings,
            "listen_addresses": self.host,
            "port": str(port),
            "unix_socket_directories": self._socket_dir(),
        }
        cmd = [*prefix, str(self._bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        assert self._log_fh is not None
        self._log_fh.write(b"$ " + " ".join(cmd).encode() + b"\n")
        self._log_fh.flush()
        self._log_offset = self.log_path.stat().st_size
        # runuser forwards SIGTERM to postgres (smart shutdown); a bare postmaster gets SIGINT (fast).
        death_signal = signal.SIGTERM if prefix else signal.SIGINT
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=self.tmpdir,
            env=_clean_env(),
            start_new_session=True,  # a Ctrl-C in the terminal must not take the server down
            preexec_fn=parent_death_preexec(death_signal),
            **kwargs,  # type: ignore[arg-type]
        )
        self.pid = None

    def _wait_ready(self, port: int) -> None:
        import psycopg

        assert self._proc is not None
        expected = os.path.realpath(self.data_dir)
        deadline = time.monotonic() + self.startup_timeout
        dsn = f"host={self.host} port={port} user={SUPERUSER} dbname=postgres connect_timeout=5"
        while True:
            if self._proc.poll() is not None:
                log = _tail(self.log_path, start=self._log_offset)
                if any(marker in log for marker in _ADDR_IN_USE_MARKERS):
                    raise _PortInUse(f"port {port} is in use")
                raise PostgresServerError(
                    f"postgres exited with code {self._proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{log}"
                )
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    row = conn.execute("SHOW data_directory").fetchone()
                    # Another session's server may have grabbed the port: keep waiting for ours.
                    if row and os.path.realpath(row[0]) == expected:
                        break
            except psycopg.Error:
                pass
            if time.monotonic() >= deadline:
                raise PostgresServerError(
                    f"postgres not ready after {self.startup_timeout:.0f}s; log {self.log_path}:\n"
                    f"{_tail(self.log_path, start=self._log_offset)}"
                )
            time.sleep(0.05)
        self.pid = self._read_postmaster_pid() or (None if _is_root() else self._proc.pid)

    def _execute_admin(self, template: str, dbname: str, *, pg15_suffix: str = "") -> None:
        """Run a statement with one identifier (a database name) in the maintenance database."""
        import psycopg
        from psycopg import sql

        if not _DB_NAME_RE.match(dbname):
            raise ValueError(f"not a plain database name: {dbname!r}")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            if conn.info.server_version >= 150000:
                template += pg15_suffix
            conn.execute(sql.SQL(template).format(sql.Identifier(dbname)))

    def _read_postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, PostgresServerError):
            return None

    def _stop_process(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        postmaster = self.pid or self._read_postmaster_pid()
        if postmaster is None and not _is_root():
            postmaster = proc.pid
        try:
            if proc.poll() is None:
                if postmaster is not None:
                    _signal(postmaster, signal.SIGINT)  # fast shutdown
                else:
                    _signal(proc.pid, signal.SIGTERM)  # not up yet: runuser forwards SIGTERM
                if not _waited(proc, timeout) and postmaster is not None:
                    _signal(postmaster, signal.SIGQUIT)  # immediate shutdown
                if not _waited(proc, 5.0):
                    # The whole process group: runuser, postmaster and any backends.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                if not _waited(proc, 5.0):
                    raise PostgresServerError(f"could not stop postgres (pid {proc.pid})")
            # If runuser went away first the postmaster was reparented: make sure it is gone too.
            if postmaster is not None and not _wait_gone(postmaster, 5.0):
                _signal(postmaster, signal.SIGKILL)
                _wait_gone(postmaster, 5.0)
        finally:
            self.port = None


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _waited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _default_base_dir() -> Path:
    """The temp dir, unless (as root) the postgres user could not reach it; then /tmp."""
    base = Path(tempfile.gettempdir())
    if _is_root():
        for part in [base, *base.parents]:
            try:
                if not part.stat().st_mode & 0o001:
                    return Path("/tmp")
            except OSError:
                return Path("/tmp")
    return base
