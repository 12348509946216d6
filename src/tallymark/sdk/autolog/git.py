"""The git state of the code an experiment ran: commit, branch, origin, uncommitted changes.

``collect_git()`` finds the work tree that holds the entry script (or the current directory), asks
``git`` for its state and returns a plain dict, or ``None`` when there is no repository or no
``git`` executable. It never raises, and every ``git`` call runs under a timeout so a slow network
filesystem cannot stall the start of training.

Example::

    from tallymark.sdk.autolog import collect_git
    info = collect_git()
    if info and info["is_dirty"]:
        print(info["commit"], info["branch"], len(info["diff"]))

Credentials embedded in the remote URL (``https://user:token@host/...``) and secret query
parameters (``?access_token=…``) are removed before the URL is returned (:mod:`.redact`). The uncommitted diff
(``git diff HEAD``: staged and unstaged changes to tracked files) is capped at
:data:`MAX_DIFF_BYTES`; untracked files are listed by name only.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .redact import strip_url_credentials

if TYPE_CHECKING:
    import subprocess

__all__ = ["MAX_DIFF_BYTES", "MAX_UNTRACKED", "collect_git", "strip_url_credentials"]

#: The uncommitted diff is cut at this size (``diff_truncated`` then says so).
MAX_DIFF_BYTES = 5 * 1024 * 1024
#: At most this many untracked paths are listed (``untracked_truncated`` then says so).
MAX_UNTRACKED = 1000

# The object name git hard-codes for the empty tree: diffing against it works in a repository
# that has no commit yet.
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_COMMON_OPTS = ("-c", "core.quotepath=off", "-c", "color.ui=false")


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password prompt
    env["GIT_OPTIONAL_LOCKS"] = "0"  # `git status` must not take index.lock under the user's feet
    return env


def _run(
    args: list[str], cwd: str, timeout: float, max_bytes: int | None = None
) -> tuple[int, bytes, bool] | None:
    """Run ``git args`` in ``cwd``; ``(returncode, stdout, truncated)`` or ``None`` on any failure.

    With ``max_bytes`` the output is read incrementally and git is stopped once the cap is hit, so a
    gigantic diff never sits in memory.
    """
    import subprocess

    if timeout <= 0:
        return None
    try:
        proc = subprocess.Popen(
            ["git", *_COMMON_OPTS, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_git_env(),
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if max_bytes is None:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None
        return proc.returncode, out, False

    cap = max_bytes
    chunks: list[bytes] = []
    truncated = False

    def reader() -> None:
        nonlocal truncated
        size = 0
        try:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(65536):
                if len(chunk) > cap - size:
                    chunks.append(chunk[: cap - size])
                    truncated = True
                    proc.kill()
                    return
                chunks.append(chunk)
                size += len(chunk)
        except Exception:  # the pipe closed under us after a timeout: nothing to report
            pass

    thread = threading.Thread(target=reader, name="tallymark-git-reader", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        proc.kill()
        thread.join(1.0)
        _reap(proc)
        return None
    _reap(proc)
    return (0 if truncated else proc.returncode), b"".join(chunks), truncated


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait(timeout=1.0)
    except Exception:
        pass


def _start_dirs(path: str | os.PathLike[str] | None) -> list[str]:
    """Folders to search from: ``path``'s, else the entry script's, then the cwd."""
    if path is not None:
        p = os.path.abspath(os.path.expanduser(os.fspath(path)))
        return [p if os.path.isdir(p) else os.path.dirname(p)]
    from .code import entry_script_path

    dirs = []
    script = entry_script_path()
    if script is not None:
        dirs.append(os.path.dirname(script))
    try:
        dirs.append(os.getcwd())
    except OSError:
        pass
    return dirs


def _has_git_dir(start: str) -> bool:
    """Cheap pre-check so a run outside any repository spawns no process at all."""
    if os.environ.get("GIT_DIR"):
        return True
    folder = start
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def _parse_status(out: bytes) -> dict[str, Any]:
    """Parse ``git status --porcelain=v2 --branch -z``."""
    oid: str | None = None
    head: str | None = None
    changed = 0
    untracked: list[str] = []
    fields = out.split(b"\0")
    i = 0
    while i < len(fields):
        raw = fields[i]
        i += 1
        if not raw:
            continue
        entry = raw.decode("utf-8", "surrogateescape")
        if entry.startswith("# branch.oid "):
            value = entry[len("# branch.oid ") :]
            oid = None if value == "(initial)" else value
        elif entry.startswith("# branch.head "):
            head = entry[len("# branch.head ") :]
        elif entry.startswith("? "):
            untracked.append(entry[2:].encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        elif entry[:2] in ("1 ", "u "):
            changed += 1
        elif entry.startswith("2 "):
            changed += 1
            i += 1  # a rename/copy record is followed by the original path as its own field
    return {"oid": oid, "head": head, "changed": changed, "untracked": untracked}


def collect_git(path: str | os.PathLike[str] | None = None, timeout: float = 5.0) -> dict[str, Any] | None:
    """Describe the git work tree holding ``path`` (default: the entry script's, else the cwd's).

    Returns ``None`` outside a repository or without ``git``; never raises. Keys:

    - ``root``: the work tree's top folder; ``commit``: HEAD's sha (``None`` before the first commit)
    - ``branch``: the checked-out branch, ``None`` when ``detached`` is true
    - ``remote_url``: ``origin``'s URL without credentials (``None`` without an origin)
    - ``is_dirty``: true when tracked files changed (staged or not) or untracked files exist
    - ``diff``: ``git diff HEAD`` text (``""`` when clean), ``diff_truncated``: cut at 5 MB
    - ``untracked``: untracked paths relative to ``root`` (folders collapsed as ``dir/``),
      ``untracked_truncated``: more than :data:`MAX_UNTRACKED` existed

    ``timeout`` bounds each git call; the whole collection is bounded by twice that.
    """
    try:
        return _collect(path, timeout)
    except Exception:
        return None


def _collect(path: str | os.PathLike[str] | None, timeout: float) -> dict[str, Any] | None:
    # A script installed outside any repository (a console entry point in site-packages) falls
    # back to the cwd, where the user's project usually is.
    cwd = next((d for d in _start_dirs(path) if os.path.isdir(d) and _has_git_dir(d)), None)
    if cwd is None:
        return None
    deadline = time.monotonic() + 2 * timeout

    def remaining() -> float:
        return min(timeout, deadline - time.monotonic())

    top = _run(["rev-parse", "--show-toplevel"], cwd, remaining())
    if top is None or top[0] != 0 or not top[1].strip():
        return None  # no git executable, not a work tree (e.g. inside .git), or unsafe ownership
    root = top[1].decode("utf-8", "replace").strip()

    info: dict[str, Any] = {
        "root": root,
        "commit": None,
        "branch": None,
        "detached": False,
        "remote_url": None,
        "is_dirty": None,
        "diff": None,
        "diff_truncated": False,
        "untracked": [],
        "untracked_truncated": False,
    }

    status = _run(
        ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"], root, remaining()
    )
    if status is not None and status[0] == 0:
        parsed = _parse_status(status[1])
        info["commit"] = parsed["oid"]
        head = parsed["head"]
        info["detached"] = head == "(detached)"
        info["branch"] = None if head in (None, "(detached)") else head
        untracked = sorted(parsed["untracked"])
        info["untracked"] = untracked[:MAX_UNTRACKED]
        info["untracked_truncated"] = len(untracked) > MAX_UNTRACKED
        info["is_dirty"] = bool(parsed["changed"] or untracked)
        if parsed["changed"]:
            base = info["commit"] or _EMPTY_TREE
            diff = _run(
                ["diff", "--no-ext-diff", "--no-textconv", "--no-color", base, "--"],
                root,
                remaining(),
                max_bytes=MAX_DIFF_BYTES,
            )
            if diff is not None and diff[0] == 0:
                info["diff"] = diff[1].decode("utf-8", "replace")
                info["diff_truncated"] = diff[2]
        else:
            info["diff"] = ""

    remote = _run(["config", "--get", "remote.origin.url"], root, remaining())
    if remote is not None and remote[0] == 0 and remote[1].strip():
        info["remote_url"] = strip_url_credentials(remote[1].decode("utf-8", "replace").strip())
    return info
