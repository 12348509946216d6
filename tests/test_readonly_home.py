"""A home this process cannot write is opened for reading (SQLite ``mode=ro`` / ``immutable=1``).

The home is made read-only for real: a read-only bind mount of itself in a private mount namespace
(tests/diskfull.py), where even root gets EROFS. Before: every read failed on open with "unable to
open database file" (``PRAGMA journal_mode=WAL``); now the CLI, ``tallymark ui`` and ``tallymark.API()``
read it, and a write fails naming the read-only database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from diskfull import read_only_command, tallymark_env
from procutil import free_port

WRITE = r"""
import sys, tallymark
exp = tallymark.Experiment(project_name="p", workspace="w", log_code=False, log_env=False,
                           log_git=False, log_system_metrics=False, capture_stdout=False)
exp.log_parameter("lr", 0.1)
for i in range(10):
    exp.log_metric("loss", 1.0 / (i + 1), step=i)
exp.log_asset(__file__, file_name="train.py")
exp.end()
print(exp.get_key(), flush=True)
if len(sys.argv) > 1:  # keep a connection open: the last commits stay in the WAL, not the main file
    from tallymark.sdk.transport import LocalTransport
    t = LocalTransport()
    t.read("workspaces")
    t.create_experiment({"key": "f" * 32, "workspace": "w", "project": "late", "user": "u"})
    print("late", flush=True)
    sys.stdin.readline()
"""

READ = r"""
import json, tallymark
from tallymark.sdk.transport import TallymarkError
api = tallymark.API()
exps = api.get_experiments("w")
out = {"keys": sorted(e.key for e in exps)}
e = [x for x in exps if x.key != "f" * 32][0]
out["params"] = {p["name"]: p["valueCurrent"] for p in e.get_parameters_summary()}
out["loss"] = [m["count"] for m in e.get_metrics_summary() if m["name"] == "loss"]
out["asset"] = e.get_asset(e.get_asset_list()[0]["assetId"]).decode()[:20]
try:
    tallymark.Experiment(project_name="p", workspace="w", log_code=False, log_env=False,
                         log_git=False, log_system_metrics=False, capture_stdout=False)
    out["write"] = "no error"
except TallymarkError as exc:
    out["write"] = [exc.status, exc.code, exc.message]
print(json.dumps(out))
"""


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    script = tmp_path / "write.py"
    script.write_text(WRITE)
    env = tallymark_env(TALLYMARK_HOME=str(home))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (home / "tallymark.db-wal").exists()  # a clean close: nothing but the main file
    return home, done.stdout.split()[0]


def test_cli_lists_the_experiments_of_a_read_only_home(home: tuple[Path, str]) -> None:
    folder, key = home
    cmd = [sys.executable, "-m", "tallymark", "experiments", "list", "w", "--home", str(folder)]
    done = subprocess.run(
        read_only_command(folder, cmd), env=tallymark_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert key in done.stdout


def _read(folder: Path, tmp_path: Path) -> dict:
    script = tmp_path / "read.py"
    script.write_text(READ)
    env = tallymark_env(TALLYMARK_HOME=str(folder))
    done = subprocess.run(
        read_only_command(folder, [sys.executable, str(script)]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_api_reads_a_read_only_home_and_a_write_names_the_read_only_database(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    folder, key = home
    out = _read(folder, tmp_path)
    assert out["keys"] == [key]
    assert out["params"] == {"lr": 0.1} and out["loss"] == [10]
    assert out["asset"].startswith("\nimport sys")
    status, code, message = out["write"]
    assert (status, code) == (503, "read_only")
    assert f"the database {folder / 'tallymark.db'} can be read but not written" in message
    assert "read-only file system" in message
    assert not (folder / "tallymark.db-wal").exists()  # and nothing was left behind in the home


def test_a_read_only_home_whose_last_commits_are_still_in_the_wal_is_read_whole(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    script = tmp_path / "write.py"
    script.write_text(WRITE)
    writer = subprocess.Popen(
        [sys.executable, str(script), "hold"],
        env=tallymark_env(TALLYMARK_HOME=str(folder)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout and writer.stdin
        key = writer.stdout.readline().strip()
        assert writer.stdout.readline().strip() == "late", writer.stderr.read() if writer.stderr else ""
        assert (folder / "tallymark.db-wal").stat().st_size > 0
        out = _read(folder, tmp_path)
        assert out["keys"] == sorted([key, "f" * 32])  # the experiment only the WAL holds is seen
        writer.stdin.write("done\n")
        writer.stdin.flush()
        writer.wait(60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_tallymark_ui_serves_a_read_only_home_and_answers_503_to_a_write(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    folder, key = home
    port = free_port("127.0.0.1")
    cmd = [sys.executable, "-m", "tallymark", "ui", "--port", str(port), "--home", str(folder)]
    log = tmp_path / "ui.log"
    proc = subprocess.Popen(
        read_only_command(folder, cmd), env=tallymark_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert httpx.get(f"{url}/api/v1/experiments/{key}").json()["key"] == key
        page = httpx.get(f"{url}/w/p/{key}")
        assert page.status_code == 200 and key in page.text
        r = httpx.post(
            f"{url}/api/v1/experiments/{key}/batch", json={"batch_id": "b" * 32, "params": {"x": 1}}
        )
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "read_only" and "can be read but not written" in err["message"]
    finally:
        proc.terminate()
        proc.wait(30)
