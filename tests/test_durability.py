"""What the SDK promises about flushed points (docs/sdk.md, "Durability"), against a real server:

- a client that ends while the server is down leaves a journal that `tallymark upload PATH` (the
  path the SDK prints) sends whole, exactly once;
- a batch the server refuses with a 4xx is dropped with one warning and never blocks later batches,
  neither when sent nor when replayed from the journal;
- a journal that cannot be written never raises into the training code, and end() says what was not
  saved.

The random-kill version of these promises is tests/test_chaos.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tallymark
from tallymark.sdk.journal import Journal
from tallymark.sdk.transport import HttpTransport

from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow

QUIET = dict(log_code=False, log_env=False, log_git=False, log_system_metrics=False, capture_stdout=False)


def _experiment(url: str) -> tallymark.Experiment:
    exp = tallymark.Experiment(project_name="p", workspace="w", url=url, send_interval=3600, **QUIET)
    exp._sender.retry_delays = (0.05, 0.1)  # the outage is certain here: no need to wait out 7.7 s
    return exp


def _kill(srv: ServerProcess) -> None:
    assert srv.proc is not None
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None


def _steps(url: str, key: str, metric: str = "m") -> list[int]:
    r = httpx.get(f"{url}/api/v1/experiments/{key}/metric", params={"name": metric}, timeout=30)
    r.raise_for_status()
    return r.json()["steps"]


def _upload(url: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    cmd = [sys.executable, "-m", "tallymark", "upload", *map(str, paths), "--url", url]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _printed_upload(stderr: str) -> list[str]:
    """The arguments of the one `tallymark upload ...` command the SDK printed at end()."""
    found = re.findall(r"`tallymark upload ([^`]+)`", stderr)
    assert len(found) == 1, stderr
    return found[0].split()


@pytest.fixture
def client_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "client"
    monkeypatch.setenv("TALLYMARK_HOME", str(home))
    monkeypatch.delenv("TALLYMARK_URL", raising=False)
    return home


def test_server_down_at_end_every_flushed_point_arrives_after_upload(tmp_path, client_home, capfd):
    """The finding: server SIGKILLed mid-run, client ended while it was down — 2,000 of 3,000
    flushed points were missing and the journal the SDK named could not be uploaded."""
    srv = ServerProcess(tmp_path / "srv").start()
    try:
        exp = _experiment(srv.url)
        key = exp.get_key()
        for i in range(1000):
            exp.log_metric("m", i, step=i)
        exp.flush()
        _kill(srv)
        for i in range(1000, 2000):
            exp.log_metric("m", i, step=i)
        exp.flush()
        exp.log_parameter("lr", 0.1)
        for i in range(2000, 3000):
            exp.log_metric("m", i, step=i)
        exp.end()
        stderr = capfd.readouterr().err
        args = _printed_upload(stderr)
        journal = Path(args[0])
        assert journal == client_home / "journal" / key
        assert args[1:] == ["--url", srv.url]
        assert "2,000 points" in stderr, stderr
        srv.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
        up = subprocess.run(  # exactly the command printed, from a shell without TALLYMARK_* set
            [sys.executable, "-m", "tallymark", "upload", *args], capture_output=True, text=True, env=env
        )
        assert up.returncode == 0, up.stderr
        assert _steps(srv.url, key) == list(range(3000))
        info = httpx.get(f"{srv.url}/api/v1/experiments/{key}", timeout=30).json()
        assert info["status"] == "ended"
        assert not journal.exists(), "an uploaded journal is removed"
    finally:
        srv.stop()


def test_journal_uploads_twice_or_after_an_interrupted_upload_without_duplicates(tmp_path, client_home):
    """Replays are idempotent: an upload that died half-way, or a journal copied and uploaded twice,
    stores each point once (batch ids)."""
    port = free_port()
    exp = _experiment(f"http://127.0.0.1:{port}")  # never up while the client runs
    key = exp.get_key()
    for chunk in range(4):
        for i in range(chunk * 250, (chunk + 1) * 250):
            exp.log_metric("m", float(i), step=i)
        exp.flush()
    exp.end()
    journal = client_home / "journal" / key
    copy = tmp_path / "copy" / key
    copy.parent.mkdir()
    subprocess.run(["cp", "-r", str(journal), str(copy)], check=True)
    with ServerProcess(tmp_path / "srv", port=port) as srv:
        # An upload that stopped after two entries: deleted as acknowledged, the rest stays.
        entries = sorted(journal.glob("0*-batch.json"))
        assert len(entries) == 5  # four flushes and the end
        t = HttpTransport(srv.url)
        t.create_experiment(json.loads((journal / "experiment.json").read_text()))
        for e in entries[:2]:
            t.send_batch(key, json.loads(e.read_bytes()))
        entries[0].unlink()  # killed after acknowledging entry 2 but before deleting it
        assert Journal(journal).pending() == 4
        assert _upload(srv.url, journal).returncode == 0
        assert _upload(srv.url, copy).returncode == 0
        assert _steps(srv.url, key) == list(range(1000))
        t.close()


def test_a_journal_without_experiment_json_still_uploads(tmp_path, client_home):
    """Journals left by earlier versions (experiment created online, so no experiment.json): the
    folder's name is the key."""
    with ServerProcess(tmp_path / "srv") as srv:
        exp = _experiment(srv.url)
        key = exp.get_key()
        for i in range(10):
            exp.log_metric("m", i, step=i)
        exp.flush()
        exp._sender.offline = True  # journal without sending, as if the server had gone
        for i in range(10, 30):
            exp.log_metric("m", i, step=i)
        exp.end()
        journal = client_home / "journal" / key
        (journal / "experiment.json").unlink()
        up = _upload(srv.url, journal)
        assert up.returncode == 0, up.stderr
        assert _steps(srv.url, key) == list(range(30))


def _poison(exp):
    """A batch the server refuses (413: larger than its value limit). The SDK refuses such a value
    at log time (tests/test_poison.py), so it is put straight into the sender, as a server set up
    with smaller limits than the SDK knows would refuse a batch the SDK let through."""
    exp._sender.params({"huge": "x" * (2 << 20)})


def test_a_refused_batch_is_dropped_with_one_warning_and_later_points_all_arrive(
    tmp_path, client_home, capfd
):
    with ServerProcess(tmp_path / "srv") as srv:
        exp = _experiment(srv.url)
        key = exp.get_key()
        for i in range(50):
            exp.log_metric("m", i, step=i)
        exp.flush()
        for _ in range(3):  # three batches the server answers 413 (value larger than its limit)
            _poison(exp)
            exp.flush()
        for i in range(50, 150):
            exp.log_metric("m", i, step=i)
            if i % 25 == 0:
                exp.flush()
        exp.end()
        err = capfd.readouterr().err
        assert _steps(srv.url, key) == list(range(150))
        assert err.count("the server refused a batch") == 1, err  # the same message is warned once
        assert "not saved: 3 request(s) refused by the server" in err, err
        assert not (client_home / "journal" / key).exists(), "a refused batch is never journaled"
        info = httpx.get(f"{srv.url}/api/v1/experiments/{key}", timeout=30).json()
        assert info["status"] == "ended"


def test_a_refused_entry_in_the_journal_never_blocks_the_entries_after_it(tmp_path, client_home, capfd):
    """The poison-pill case: a batch the server can never accept was journaled while it was down;
    once it answers, the replay drops that entry and sends every later one."""
    port = free_port()
    exp = _experiment(f"http://127.0.0.1:{port}")
    key = exp.get_key()
    _poison(exp)
    exp.flush()
    for i in range(100):
        exp.log_metric("m", i, step=i)
        if i % 10 == 9:
            exp.flush()
    with ServerProcess(tmp_path / "srv", port=port) as srv:
        exp._sender._down_since = None  # do not wait out the 5 s back-off in a test
        exp.end()
        err = capfd.readouterr().err
        assert _steps(srv.url, key) == list(range(100))
        assert "the server refused journal entry 00000001-batch.json" in err, err
        assert not (client_home / "journal" / key).exists()


def test_an_unwritable_journal_never_raises_and_end_says_what_was_not_saved(tmp_path, monkeypatch, capfd):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("TALLYMARK_HOME", str(blocker / "home"))  # mkdir fails: ENOTDIR
    port = free_port()
    exp = _experiment(f"http://127.0.0.1:{port}")
    for i in range(100):
        exp.log_metric("m", i, step=i)
    exp.flush()  # server down and journal unwritable: held in memory, no exception
    for i in range(100, 200):
        exp.log_metric("m", i, step=i)
    exp.flush()
    err = capfd.readouterr().err
    assert err.count("cannot write the journal") == 1, err
    with ServerProcess(tmp_path / "srv", port=port) as srv:
        exp._sender._down_since = None
        exp.end()  # what was held in memory is sent now
        assert _steps(srv.url, exp.get_key()) == list(range(200))
        assert "not saved" not in capfd.readouterr().err

    exp = _experiment(f"http://127.0.0.1:{port}")  # and when the server never comes back
    for i in range(10):
        exp.log_metric("m", i, step=i)
    exp.end()
    err = capfd.readouterr().err
    assert "not saved: 10 points (the journal could not be written)" in err, err


KILLED_CLIENT = """
import sys, time, tallymark
exp = tallymark.Experiment(project_name="p", workspace="w", url=sys.argv[1], send_interval=3600,
                           log_code=False, log_env=False, log_git=False, log_system_metrics=False,
                           capture_stdout=False)
exp._sender.retry_delays = (0.05,)
print(exp.get_key(), flush=True)
for i in range(300):
    exp.log_metric("m", i, step=i)
exp.flush()
print("stored", flush=True)
sys.stdin.readline()  # the test kills the server meanwhile
for i in range(300, 1000):
    exp.log_metric("m", i, step=i)
exp.flush()
for i in range(1000, 1050):
    exp.log_metric("m", i, step=i)  # never flushed: may or may not survive the kill
print("flushed", flush=True)
time.sleep(600)
"""


def test_a_client_killed_after_flush_while_the_server_is_down_is_sent_by_the_next_run(
    tmp_path, client_home, capfd
):
    script = tmp_path / "client.py"
    script.write_text(KILLED_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    env["TALLYMARK_HOME"] = str(client_home)
    srv = ServerProcess(tmp_path / "srv").start()
    p = subprocess.Popen(
        [sys.executable, str(script), srv.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        key = p.stdout.readline().strip()  # type: ignore[union-attr]
        assert p.stdout.readline().strip() == "stored"  # type: ignore[union-attr]
        _kill(srv)
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        assert p.stdout.readline().strip() == "flushed"  # type: ignore[union-attr]
        p.kill()
        p.wait()
        journal = client_home / "journal" / key
        assert Journal(journal).pending() >= 1
        srv.start()
        nxt = _experiment(srv.url)  # the next run against this server, same home
        nxt.end()  # end() waits for the journals it adopted to be sent
        assert "sent the journal an earlier run left" in capfd.readouterr().err
        steps = _steps(srv.url, key)
        assert len(steps) == len(set(steps)), "nothing stored twice"
        assert set(range(1000)) <= set(steps) <= set(range(1050))
        assert not journal.exists()
    finally:
        p.kill()
        p.wait()
        srv.stop()


def test_a_hung_server_times_out_into_the_journal_and_nothing_is_stored_twice(tmp_path, client_home):
    """SIGSTOP: requests time out (the stopped server may still apply them once it resumes), the
    batches go to the journal, and the replay after SIGCONT stores each point once (batch ids)."""
    with ServerProcess(tmp_path / "srv") as srv:
        exp = _experiment(srv.url)
        exp._transport._client.timeout = httpx.Timeout(0.5)  # type: ignore[union-attr]
        for i in range(100):
            exp.log_metric("m", i, step=i)
        exp.flush()
        assert srv.proc is not None
        os.killpg(srv.proc.pid, signal.SIGSTOP)
        try:
            for i in range(100, 400):
                exp.log_metric("m", i, step=i)
                if i % 100 == 99:
                    exp.flush()  # times out, journals, never raises
            assert exp._journal.pending() >= 1
        finally:
            os.killpg(srv.proc.pid, signal.SIGCONT)
        exp._transport._client.timeout = httpx.Timeout(30)  # type: ignore[union-attr]
        exp._sender._down_since = None
        exp.end()
        assert _steps(srv.url, exp.get_key()) == list(range(400))
        assert not (client_home / "journal" / exp.get_key()).exists()


def test_upload_sends_everything_but_a_refused_entry_and_says_so(tmp_path, client_home):
    port = free_port()
    exp = _experiment(f"http://127.0.0.1:{port}")  # the server is down for the whole run
    _poison(exp)
    exp.flush()
    for i in range(100):
        exp.log_metric("m", i, step=i)
    exp.end()
    journal = client_home / "journal" / exp.get_key()
    with ServerProcess(tmp_path / "srv", port=port) as srv:
        up = _upload(srv.url, journal)
        assert up.returncode == 1
        assert "1 entry" in up.stderr and "refused" in up.stderr and "limit" in up.stderr, up.stderr
        assert _steps(srv.url, exp.get_key()) == list(range(100))
        assert [p.name for p in Journal(journal).entries()] == ["00000001-batch.json"]
