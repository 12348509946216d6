"""A real `tallymark server` process for tests that need the network (started and stopped here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self, home: Path, port: int | None = None, workers: int = 1, db: str | None = None, auth: bool = False
    ) -> None:
        """``auth=True``: a server with authentication on (API keys required; create users and keys
        on ``home``/``db`` with the service functions or ``tallymark admin`` before or after start)."""
        self.home = home
        self.auth = auth
        self.port = port or free_port()
        self.workers = workers
        self.db = db
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    what = "server"

    def command(self) -> list[str]:
        """The command line of the process (subclasses start another tallymark command)."""
        cmd = [
            sys.executable,
            "-m",
            "tallymark",
            "server",
            *(() if self.auth else ("--no-auth",)),
            "--port",
            str(self.port),
            "--home",
            str(self.home),
            "--workers",
            str(self.workers),
        ]
        if self.db:
            cmd += ["--db", self.db]
        return cmd

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.what} did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_key() -> str:
    """A fresh experiment key (32 hex), as the SDK generates them."""
    import uuid

    return uuid.uuid4().hex
