"""Tests for tallymark.sdk.autolog: what an experiment records without being asked."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tallymark.sdk import autolog
from tallymark.sdk.autolog import (
    CodeTooLargeError,
    OutputCapture,
    SystemMonitor,
    as_requirements,
    collect_code,
    collect_environment,
    collect_git,
    installed_packages,
    strip_url_credentials,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------- import hygiene


def test_public_names() -> None:
    assert sorted(autolog.__all__) == sorted(
        [
            "ENV_ALLOWLIST",
            "MAX_CODE_BYTES",
            "MAX_DIFF_BYTES",
            "CodeTooLargeError",
            "OutputCapture",
            "SystemMonitor",
            "as_requirements",
            "collect_code",
            "collect_environment",
            "collect_git",
            "current_user",
            "entry_script_path",
            "installed_packages",
            "strip_url_credentials",
        ]
    )
    for name in autolog.__all__:
        assert hasattr(autolog, name)


def test_import_is_side_effect_free() -> None:
    code = (
        "import sys, threading\n"
        "out, err = sys.stdout, sys.stderr\n"
        "import tallymark.sdk.autolog\n"
        "import tallymark.sdk.autolog.env, tallymark.sdk.autolog.packages, tallymark.sdk.autolog.git\n"
        "import tallymark.sdk.autolog.code, tallymark.sdk.autolog.stdout, tallymark.sdk.autolog.system\n"
        "print('psutil' in sys.modules, sys.stdout is out and sys.stderr is err,"
        " threading.active_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "1"]


# ---------------------------------------------------------------- environment


def test_environment_is_json_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLYMARK_USER", "alice")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TALLYMARK_API_KEY", "super-secret-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "super-secret-aws")
    env = collect_environment()
    text = json.dumps(env)  # must not raise
    assert "super-secret" not in text
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["implementation"]
    assert env["python"]["executable"] == sys.executable
    assert env["os"]["system"]
    assert env["hostname"]
    assert env["user"] == "alice"
    assert env["pid"] == os.getpid()
    assert env["cwd"] == os.getcwd()
    assert env["argv"] == sys.argv
    assert isinstance(env["orig_argv"], list)
    assert env["cpu"]["count"] == os.cpu_count()
    assert env["memory_total_bytes"] is None or env["memory_total_bytes"] > 0
    assert isinstance(env["gpus"], list)
    assert env["env_vars"]["OMP_NUM_THREADS"] == "3"
    assert set(env["env_vars"]) <= set(autolog.ENV_ALLOWLIST)
    assert "utc_offset_seconds" in env["timezone"]


def test_user_falls_back_to_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALLYMARK_USER", raising=False)
    assert autolog.current_user()


# ---------------------------------------------------------------- packages


def test_installed_packages() -> None:
    pkgs = installed_packages()
    names = [p["name"].lower() for p in pkgs]
    assert "pytest" in names
    assert names == sorted(names, key=lambda n: n.replace("_", "-").replace(".", "-"))
    assert len({autolog.packages.canonical_name(n) for n in names}) == len(names)
    pytest_entry = next(p for p in pkgs if p["name"].lower() == "pytest")
    assert pytest_entry["version"] == pytest.__version__


def test_as_requirements() -> None:
    text = as_requirements([{"name": "a", "version": "1.0"}, {"name": "B_c", "version": "2"}, {"name": "x"}])
    assert text == "a==1.0\nB_c==2\n"
    assert as_requirements([]) == ""
    assert "pytest==" in as_requirements(installed_packages())


# ---------------------------------------------------------------- git

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.email=t@example.com", "-c", "user.name=T", "-c", "init.defaultBranch=main"]
    return subprocess.run(
        [*cmd, *args], cwd=repo, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()


@pytest.fixture
def clean_git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run from a git hook, which exports GIT_DIR/GIT_INDEX_FILE for the outer repository.
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def repo(tmp_path: Path, clean_git_env: None) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "train.py").write_text("print('v1')\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_git_clean_repo(repo: Path) -> None:
    info = collect_git(repo)
    assert info is not None
    assert info["commit"] == _git(repo, "rev-parse", "HEAD")
    assert info["branch"] == "main"
    assert info["detached"] is False
    assert info["is_dirty"] is False
    assert info["diff"] == ""
    assert info["untracked"] == []
    assert info["remote_url"] is None
    assert os.path.samefile(info["root"], repo)
    json.dumps(info)


@needs_git
def test_git_dirty_repo(repo: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "staged.py").write_text("x = 1\n")
    _git(repo, "add", "staged.py")
    (repo / "notes.txt").write_text("untracked\n")
    sub = repo / "pkg"
    sub.mkdir()
    (sub / "mod.py").write_text("y = 2\n")
    info = collect_git(sub / "mod.py")  # a file deep inside the work tree finds the root
    assert info is not None
    assert info["is_dirty"] is True
    assert "-print('v1')" in info["diff"] and "+print('v2')" in info["diff"]
    assert "+x = 1" in info["diff"]  # staged changes are part of `git diff HEAD`
    assert info["diff_truncated"] is False
    assert info["untracked"] == ["notes.txt", "pkg/"]
    assert info["untracked_truncated"] is False


@needs_git
def test_git_only_untracked_is_dirty(repo: Path) -> None:
    (repo / "new.py").write_text("z = 3\n")
    info = collect_git(repo)
    assert info is not None
    assert info["is_dirty"] is True
    assert info["diff"] == ""
    assert info["untracked"] == ["new.py"]


@needs_git
def test_git_detached_head(repo: Path) -> None:
    commit = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "--detach", commit)
    info = collect_git(repo)
    assert info is not None
    assert info["detached"] is True and info["branch"] is None
    assert info["commit"] == commit


@needs_git
def test_git_repo_without_commits(tmp_path: Path, clean_git_env: None) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("a = 1\n")
    _git(tmp_path, "add", "a.py")
    info = collect_git(tmp_path)
    assert info is not None
    assert info["commit"] is None
    assert info["is_dirty"] is True
    assert "+a = 1" in info["diff"]


@needs_git
def test_git_remote_credentials_are_stripped(repo: Path) -> None:
    _git(repo, "remote", "add", "origin", "https://user:secret@example.com/x.git")
    info = collect_git(repo)
    assert info is not None
    assert info["remote_url"] == "https://example.com/x.git"
    assert "secret" not in json.dumps(info)


@needs_git
def test_git_diff_is_capped(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autolog.git, "MAX_DIFF_BYTES", 1000)
    (repo / "train.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    info = collect_git(repo)
    assert info is not None
    assert info["diff_truncated"] is True
    assert 900 <= len(info["diff"].encode()) <= 1000


def _skip_if_inside_work_tree(folder: Path) -> None:
    # On some machines the temporary folder itself sits inside a repository.
    if shutil.which("git") is not None:
        probe = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], cwd=folder, capture_output=True, text=True
        )
        if probe.returncode == 0:
            pytest.skip("the temporary folder is inside a git work tree")


@needs_git
def test_git_default_uses_script_folder_then_cwd(repo: Path, tmp_path: Path) -> None:
    _skip_if_inside_work_tree(tmp_path)
    code = (
        "import json\nfrom tallymark.sdk.autolog.git import collect_git\nprint(json.dumps(collect_git()))\n"
    )
    inside = repo / "run.py"
    inside.write_text(code)
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    outside = outside_dir / "run.py"
    outside.write_text(code)
    for script, cwd in ((inside, tmp_path), (outside, repo)):
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=_subprocess_env(),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        assert info is not None and os.path.samefile(info["root"], repo)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:secret@example.com/x.git", "https://example.com/x.git"),
        ("https://ghp_token123@github.com/o/r.git", "https://github.com/o/r.git"),
        ("http://u:p%40ss@host:8080/r", "http://host:8080/r"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_url_credentials(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


def test_git_outside_repo_is_none(tmp_path: Path, clean_git_env: None) -> None:
    _skip_if_inside_work_tree(tmp_path)
    assert collect_git(tmp_path) is None


@needs_git
def test_git_missing_executable_is_none(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-such-bin"))
    assert collect_git(repo) is None


# ---------------------------------------------------------------- code


def test_collect_code_of_entry_script(tmp_path: Path) -> None:
    script = tmp_path / "my_train.py"
    script.write_text(
        "import json\n"
        "from tallymark.sdk.autolog.code import collect_code\n"
        "# marker: 8c1f2\n"
        "print(json.dumps(collect_code()))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=_subprocess_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    code = json.loads(result.stdout)
    assert code["kind"] == "script"
    assert code["file_name"] == "my_train.py"
    assert code["source"] == script.read_text()
    assert os.path.samefile(code["path"], script)


def test_collect_code_without_script_is_none() -> None:
    code = (
        "import json; from tallymark.sdk.autolog.code import collect_code; print(json.dumps(collect_code()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "null"


def test_collect_code_explicit_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "model.yaml"
    cfg.write_text("lr: 0.1\n# é\n", encoding="utf-8")
    code = collect_code(cfg)
    assert code == {"file_name": "model.yaml", "source": "lr: 0.1\n# é\n", "kind": "file", "path": str(cfg)}
    with pytest.raises(FileNotFoundError):
        collect_code(tmp_path / "missing.py")
    monkeypatch.setattr(autolog.code, "MAX_CODE_BYTES", 10)
    with pytest.raises(CodeTooLargeError, match="10 MB"):
        collect_code(cfg)


def test_collect_code_in_ipython(monkeypatch: pytest.MonkeyPatch) -> None:
    class History:
        input_hist_raw = ["", "x = 1", "print(x)\n", "   "]

    class Shell:
        history_manager = History()
        user_ns = {"__vsc_ipynb_file__": "/home/me/analysis.ipynb"}

    class FakeIPython:
        @staticmethod
        def get_ipython() -> Shell:
            return Shell()

    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    code = collect_code()
    assert code is not None
    assert code["kind"] == "notebook"
    assert code["file_name"] == "analysis.ipynb"
    assert code["source"] == "# In[1]:\nx = 1\n\n\n# In[2]:\nprint(x)\n"


def test_collect_code_ipython_uses_in_list(monkeypatch: pytest.MonkeyPatch) -> None:
    class Shell:
        user_ns = {"In": ["", "a = 2"]}

    class FakeIPython:
        @staticmethod
        def get_ipython() -> Shell:
            return Shell()

    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    code = collect_code()
    assert code is not None and code["source"] == "# In[1]:\na = 2\n"
    assert code["file_name"] == "notebook.ipynb"


# ---------------------------------------------------------------- stdout


@contextlib.contextmanager
def fake_streams() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Swap sys.stdout/sys.stderr for StringIOs inside a test body.

    (A fixture cannot do it: pytest's capture re-installs its streams between setup and call.)
    """
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved


def test_output_capture_tees() -> None:
    seen: list[tuple[str, str]] = []
    with fake_streams() as (out, err):
        cap = OutputCapture(lambda stream, text: seen.append((stream, text)))
        cap.start()
        assert sys.stdout is not out
        print("hello", 42)
        sys.stdout.write("partial")
        sys.stdout.flush()
        sys.stdout.write(" line\n")
        print("oops", file=sys.stderr)
        sys.stdout.writelines(iter(["a\n", "b\n"]))
        cap.stop()
        assert sys.stdout is out and sys.stderr is err
        print("after")
    assert out.getvalue() == "hello 42\npartial line\na\nb\nafter\n"
    assert err.getvalue() == "oops\n"
    assert "".join(t for s, t in seen if s == "stdout") == "hello 42\npartial line\na\nb\n"
    assert "".join(t for s, t in seen if s == "stderr") == "oops\n"


def test_output_capture_delegates_attributes() -> None:
    with fake_streams() as (out, _), OutputCapture(lambda s, t: None):
        assert sys.stdout is not out
        assert sys.stdout.isatty() is out.isatty()
        assert sys.stdout.write("abc") == 3
        with pytest.raises(io.UnsupportedOperation):
            sys.stdout.fileno()
        assert sys.stdout.getvalue() == "abc"


def test_output_capture_delegates_fileno_and_encoding() -> None:
    real = open(os.devnull, "w", encoding="latin-1")  # noqa: SIM115
    saved = sys.stdout
    sys.stdout = real
    try:
        with OutputCapture(lambda s, t: None):
            assert sys.stdout is not real
            assert sys.stdout.fileno() == real.fileno()
            assert sys.stdout.encoding == "latin-1"
    finally:
        sys.stdout = saved
        real.close()


def test_output_capture_callback_errors_never_reach_print() -> None:
    def broken(stream: str, text: str) -> None:
        raise RuntimeError("boom")

    with fake_streams() as (out, _), OutputCapture(broken):
        print("still printed")
    assert out.getvalue() == "still printed\n"


def test_output_capture_callback_printing_does_not_recurse() -> None:
    seen: list[str] = []

    def chatty(stream: str, text: str) -> None:
        seen.append(text)
        print("[cb]")

    with fake_streams() as (out, _), OutputCapture(chatty):
        print("x")
    assert seen == ["x", "\n"]
    assert out.getvalue().count("x") == 1


def test_output_capture_does_not_clobber_later_wrappers() -> None:
    seen: list[str] = []
    with fake_streams() as (out, _):
        cap = OutputCapture(lambda s, t: seen.append(t))
        cap.start()
        tee = sys.stdout
        later = io.StringIO()
        sys.stdout = later  # another tool replaces the stream after us
        cap.stop()
        assert sys.stdout is later  # left in place
        tee.write("late write\n")  # someone still holding our tee: passes through, not captured
    assert out.getvalue() == "late write\n"
    assert seen == []


def test_output_capture_nested() -> None:
    first: list[str] = []
    second: list[str] = []
    with fake_streams() as (out, _):
        a = OutputCapture(lambda s, t: first.append(t))
        b = OutputCapture(lambda s, t: second.append(t))
        a.start()
        b.start()
        print("both")
        a.stop()  # out of order: b still wraps a's tee, which now only passes through
        print("b only")
        b.stop()
        assert sys.stdout is out
        print("none")
    assert out.getvalue() == "both\nb only\nnone\n"
    assert "".join(first) == "both\n"
    assert "".join(second) == "both\nb only\n"


def test_output_capture_threads() -> None:
    seen: list[str] = []

    def worker(n: int) -> None:
        for i in range(200):
            sys.stdout.write(f"{n}-{i}\n")

    with fake_streams() as (out, _), OutputCapture(lambda s, t: seen.append(t)):
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(seen) == 800
    assert sorted(seen) == sorted(out.getvalue().splitlines(keepends=True))


def test_output_capture_start_stop_idempotent() -> None:
    with fake_streams() as (out, _):
        cap = OutputCapture(lambda s, t: None)
        cap.start()
        tee = sys.stdout
        cap.start()
        assert sys.stdout is tee and cap.active
        cap.stop()
        cap.stop()
        assert sys.stdout is out and not cap.active


# ---------------------------------------------------------------- system metrics


def test_system_monitor_samples_and_stops_promptly() -> None:
    samples: list[tuple[dict[str, float], int]] = []
    got_two = threading.Event()

    def on_sample(values: dict[str, float], ts: int) -> None:
        samples.append((values, ts))
        if len(samples) >= 2:
            got_two.set()

    mon = SystemMonitor(on_sample, interval=0.05)
    mon.start()
    assert got_two.wait(10), "fewer than 2 samples"
    started = time.monotonic()
    mon.stop()
    assert time.monotonic() - started < 1.0
    assert not mon.running
    count = len(samples)
    time.sleep(0.2)
    assert len(samples) == count  # nothing after stop

    values, ts = samples[-1]
    assert abs(ts - time.time() * 1000) < 60_000
    expected = {
        "sys.cpu.percent",
        "sys.process.cpu_percent",
        "sys.process.rss_bytes",
        "sys.memory.used_bytes",
        "sys.memory.available_bytes",
        "sys.memory.percent",
        "sys.disk.usage_percent",
    }
    assert expected <= set(values)
    assert all(k.startswith("sys.") and isinstance(v, float) for k, v in values.items())
    assert values["sys.process.rss_bytes"] > 0
    if hasattr(os, "getloadavg"):
        assert "sys.load.1m" in values


def test_system_monitor_survives_callback_errors() -> None:
    calls = threading.Semaphore(0)

    def broken(values: dict[str, float], ts: int) -> None:
        calls.release()
        raise RuntimeError("boom")

    mon = SystemMonitor(broken, interval=0.05, per_cpu=False)
    mon.start()
    assert calls.acquire(timeout=10) and calls.acquire(timeout=10)  # kept sampling after an error
    mon.stop()


def test_system_monitor_stop_is_prompt_with_long_interval() -> None:
    mon = SystemMonitor(lambda v, t: None, interval=60)
    mon.start()
    time.sleep(0.1)
    started = time.monotonic()
    mon.stop()
    assert time.monotonic() - started < 1.0
    mon.stop()  # idempotent


def test_system_monitor_rejects_bad_interval() -> None:
    with pytest.raises(ValueError):
        SystemMonitor(lambda v, t: None, interval=0)
