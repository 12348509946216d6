"""Fixtures for the Comet compatibility tests: a real ``tallymark server --no-auth`` and a runner for
notebooks written for ``comet_ml``.

The real ``comet-ml`` package (a test-only dependency) runs in subprocesses only: importing it patches
ML frameworks. Every byte of its traffic stays on this machine: error tracking is off, and the cloud
metadata probe it makes at every experiment start goes to a proxy on 127.0.0.1:9 that refuses it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from servers import ServerProcess
except ModuleNotFoundError:  # pragma: no cover - tests/ imported as a package
    from tests.servers import ServerProcess

FIXTURES = Path(__file__).resolve().parent / "fixtures"
API_KEY = "tallymark-comet-test-key-0123456789"  # any key works on a --no-auth loopback server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "comet: runs the real comet-ml SDK against a tallymark server")


def comet_unavailable() -> str | None:
    if importlib.util.find_spec("comet_ml") is None:  # finds the package without importing it
        return "comet-ml is not installed (pip install 'comet-ml>=3.58'; it is a test-only dependency)"
    return None


@dataclass
class NotebookRun:
    output: str
    result: dict[str, Any]

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if "COMET ERROR" in line]


class CometRunner:
    """Runs fixture notebooks with the real comet-ml against one server."""

    def __init__(self, server: ServerProcess, home: Path) -> None:
        self.server = server
        self.home = home

    @property
    def url(self) -> str:
        return self.server.url

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("COMET_", "TALLYMARK_")) and k.lower() not in ("http_proxy", "https_proxy")
        }
        proxy = "http://127.0.0.1:9"  # nothing listens there: anything not for localhost is refused
        env.update(
            {
                "HOME": str(self.home),  # no ~/.comet.config of the developer's, nothing written to ~
                "COMET_URL_OVERRIDE": f"{self.server.url}/clientlib/",
                "COMET_API_KEY": API_KEY,
                "COMET_ERROR_TRACKING_ENABLE": "false",
                "HTTP_PROXY": proxy,
                "HTTPS_PROXY": proxy,
                "http_proxy": proxy,
                "https_proxy": proxy,
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def run(
        self,
        args: list[str],
        cwd: Path | None = None,
        timeout: float = 120,
        expect_result: bool = True,
        check: bool = True,
    ) -> NotebookRun:
        """Run ``python ARGS…`` (or ``comet ARGS…`` for the CLI) and parse its ``RESULT {json}`` line."""
        if args[0] == "comet":
            cmd = [str(Path(sys.executable).with_name("comet")), *args[1:]]
        else:
            cmd = [sys.executable, *args]
        proc = subprocess.run(
            cmd, cwd=cwd or self.home, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0 or not check, (
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
        )
        result: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        if expect_result:
            assert result, f"no RESULT line:\n{output[-4000:]}"
        return NotebookRun(output, result)

    def notebook(self, name: str, *args: str, cwd: Path | None = None) -> NotebookRun:
        return self.run([str(FIXTURES / name), *args], cwd=cwd)


@pytest.fixture(scope="session")
def comet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CometRunner]:
    reason = comet_unavailable()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("comet")
    server = ServerProcess(root / "server")
    server.start()
    try:
        home = root / "home"
        home.mkdir()
        yield CometRunner(server, home)
    finally:
        server.stop()


@pytest.fixture
def tallymark_api(comet: CometRunner, monkeypatch: pytest.MonkeyPatch) -> Any:
    """tallymark's own read API, over HTTP to the test server."""
    import tallymark

    monkeypatch.setenv("TALLYMARK_URL", comet.url)
    monkeypatch.setenv("TALLYMARK_USER", "reader")
    api = tallymark.API(url=comet.url)
    yield api
    api.close()
