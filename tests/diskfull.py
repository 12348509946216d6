"""A real, tiny, fillable filesystem for tests: a tmpfs in a private mount namespace.

>>> with TinyDisk(tmp_path / "disk", size="8m") as disk:          # doctest: +SKIP
...     server = disk.popen([sys.executable, "-m", "tallymark", "server", "--home", str(disk.root / "home")])
...     disk.fill()        # the next write of any process in there gets ENOSPC / SQLITE_FULL
...     disk.free()        # and now there is room again

Why a mount namespace: a tmpfs of a few megabytes is the only honest way to get a real "No space left
on device" from the kernel (and SQLITE_FULL from SQLite) without touching the machine's own disks or
mocking the filesystem. A holder process (``unshare -m`` … ``sleep``) owns the namespace; processes
under test enter it with ``nsenter``; the test itself reaches the tmpfs through
``/proc/<holder>/root/…``, which resolves inside that namespace. The mount disappears with the holder.

Needs root (CI and this machine run as root) or unprivileged user namespaces (``unshare -rm``). If
the mount cannot be made this fails loudly: a silently skipped disk-full test would hide the very
regressions it is for.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

PAGE = 4096


class TinyDisk:
    """A tmpfs of ``size`` mounted at ``mountpoint`` in a private mount namespace."""

    def __init__(self, mountpoint: Path, size: str = "8m") -> None:
        self.root = Path(mountpoint).resolve()
        self.size = size
        self.holder: subprocess.Popen[bytes] | None = None
        self._fillers: list[Path] = []

    def start(self) -> TinyDisk:
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"tests/diskfull.py needs `{tool}` (util-linux) to make a tiny disk")
        self.root.mkdir(parents=True, exist_ok=True)
        mount = f"mount -t tmpfs -o size={self.size},mode=0777 tmpfs '{self.root}'"
        script = f"{mount} && echo ready && exec sleep 86400"
        flags = (
            ["-m", "--propagation", "private"] if os.geteuid() == 0 else ["-rm", "--propagation", "private"]
        )
        self.holder = subprocess.Popen(
            ["unshare", *flags, "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        line = self.holder.stdout.readline() if self.holder.stdout else b""
        if line.strip() != b"ready":
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.stderr else ""
            self.stop()
            raise RuntimeError(
                f"cannot mount a tiny tmpfs at {self.root} in a private mount namespace: {err}"
            )
        return self

    @property
    def pid(self) -> int:
        assert self.holder is not None, "TinyDisk not started"
        return self.holder.pid

    def outside(self, path: Path | str) -> Path:
        """Where the test process reaches ``path`` (a path inside the namespace) from outside it."""
        return Path(f"/proc/{self.pid}/root") / Path(path).resolve().relative_to("/")

    @property
    def mount(self) -> Path:
        """The tmpfs, as the test process sees it."""
        return self.outside(self.root)

    def command(self, cmd: list[str], cwd: Path | str | None = None) -> list[str]:
        """``cmd`` run inside the namespace (so it sees the tmpfs at :attr:`root`)."""
        wd = str(cwd or os.getcwd())
        return ["nsenter", "-t", str(self.pid), "-m", f"--wd={wd}", "--", *cmd]

    def popen(self, cmd: list[str], cwd: Path | str | None = None, **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.command(cmd, cwd), **kw)

    def run(
        self, cmd: list[str], cwd: Path | str | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(cmd, cwd), **kw)

    def free_bytes(self) -> int:
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> int:
        """Write a filler file until the kernel answers ENOSPC, then give back ``leave`` bytes.

        Returns the bytes the filler keeps. With ``leave`` the disk is nearly full: some writes still
        fit, the next ones do not (the case where a server used to answer 500 to a few requests).
        """
        filler = self.mount / f".filler-{len(self._fillers)}"
        self._fillers.append(filler)
        written = 0
        with filler.open("wb", buffering=0) as f:
            for block in (1 << 20, 64 * 1024, PAGE, 512, 1):
                data = b"\0" * block
                while True:
                    try:
                        written += f.write(data)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                            raise
                        break
            if leave:
                written = max(0, written - leave)
                f.truncate(written)
        return written

    def free(self) -> None:
        """Remove what :meth:`fill` wrote."""
        for filler in self._fillers:
            filler.unlink(missing_ok=True)
        self._fillers.clear()

    def stop(self) -> None:
        if self.holder is not None and self.holder.poll() is None:
            os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait()
        self.holder = None

    def __enter__(self) -> TinyDisk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tallymark_env(**extra: str) -> dict[str, str]:
    """The test's environment without TALLYMARK_* settings, plus ``extra`` (sources first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env | extra


class DiskServer:
    """A real ``tallymark server`` (no auth, loopback) on a home inside ``disk``'s tmpfs."""

    def __init__(self, disk: TinyDisk, home: Path, log: Path, **env: str) -> None:
        import sys

        from procutil import free_port

        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "tallymark", "server", "--no-auth", "--port", str(self.port)]
        self.proc = disk.popen(
            [*cmd, "--home", str(home)],
            env=tallymark_env(**env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> DiskServer:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def read_only_command(folder: Path, cmd: list[str]) -> list[str]:
    """``cmd`` run where ``folder`` is a read-only bind mount of itself (a private mount namespace).

    Even root gets EROFS there, so this is the real "home I cannot write" whatever user runs the test.
    """
    import shlex

    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"tests/diskfull.py needs `{tool}` (util-linux) for a read-only home")
    f = shlex.quote(str(Path(folder).resolve()))
    flags = ["-m", "--propagation", "private"] if os.geteuid() == 0 else ["-rm", "--propagation", "private"]
    script = f"mount --bind {f} {f} && mount -o remount,bind,ro {f} && exec {shlex.join(cmd)}"
    return ["unshare", *flags, "sh", "-c", script]
