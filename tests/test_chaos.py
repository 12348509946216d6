"""Chaos: a real `tallymark server` SIGKILLed at random moments while several client processes log.

Each client logs metric points in runs of random length, calls ``flush()`` after each run and then
records, in its own acknowledgement file, how many points ``flush()`` has acknowledged. The server is
SIGKILLed at random moments and restarted on the same home and port, at least ten times. One client
is itself SIGKILLed mid-run, and every client is ended while the server is down, so their last
batches sit in journals; those are sent with ``tallymark upload PATH``, the path the SDK printed (or,
for the killed client, its journal folder). Then the count is exact: for every client, each
acknowledged point is stored exactly once, and nothing that was never logged appears.

The schedule comes from a seed, printed (and named in every assertion); rerun one with
``TALLYMARK_CHAOS_SEED=...``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from servers import ServerProcess

pytestmark = pytest.mark.slow

CLIENTS = 4
ROUNDS = 10

CLIENT = textwrap.dedent(
    """
    import os, random, sys, time
    import tallymark

    url, acks, stop, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = random.Random(seed)
    exp = tallymark.Experiment(
        project_name="chaos", workspace="w", url=url, send_interval=0.2, log_code=False,
        log_env=False, log_git=False, log_system_metrics=False, capture_stdout=False,
    )
    # Reach the journal within the outages this test makes, and replay it between them.
    exp._sender.retry_delays = (0.05, 0.1, 0.2)
    exp._sender.recheck_after = 0.5
    print(exp.get_key(), flush=True)
    step = 0
    with open(acks, "a") as out:
        while not os.path.exists(stop):
            n = rng.randint(1, 200)
            out.write(f"logging {step + n}\\n")  # before logging: what may be stored at most
            out.flush()
            for _ in range(n):
                exp.log_metric("m", step * 0.5, step=step)
                step += 1
            exp.flush()
            out.write(f"flushed {step}\\n")  # flush() returned: these points are promised
            out.flush()
            time.sleep(rng.uniform(0.01, 0.08))
        exp.end()
        out.write(f"ended {step}\\n")
    """
)


def _kill_server(srv: ServerProcess) -> None:
    assert srv.proc is not None
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None


def _read_acks(path: Path) -> tuple[int, int, bool]:
    """(points acknowledged by flush()/end(), points logged at most, ended)."""
    flushed, logged, ended = 0, 0, False
    for line in path.read_text().splitlines():
        word, _, n = line.partition(" ")
        if word in ("flushed", "ended"):
            flushed = int(n)
            ended = ended or word == "ended"
        if word == "logging":
            logged = int(n)
    return flushed, max(logged, flushed), ended


def test_sigkilled_server_loses_no_acknowledged_point_and_stores_none_twice(tmp_path):
    seed = int(os.environ.get("TALLYMARK_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"chaos seed {seed} (rerun with TALLYMARK_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    stop = tmp_path / "stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    env["TALLYMARK_HOME"] = str(tmp_path / "client-home")
    srv = ServerProcess(tmp_path / "server-home").start()
    clients: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for i in range(CLIENTS):
            acks = tmp_path / f"acks-{i}.txt"
            cmd = [sys.executable, str(script), srv.url, str(acks), str(stop), str(rng.randrange(1 << 30))]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            clients.append((p, acks))
        keys = [p.stdout.readline().strip() for p, _ in clients]  # type: ignore[union-attr]
        assert all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys), (seed, keys)
        killed_client_round = rng.randrange(2, ROUNDS)
        schedule = []
        for r in range(ROUNDS):
            up, down = rng.uniform(0.1, 1.2), rng.uniform(0.05, 1.5)
            schedule.append((round(up, 3), round(down, 3)))
            time.sleep(up)
            _kill_server(srv)
            if r == killed_client_round:
                clients[0][0].send_signal(signal.SIGKILL)  # a client killed at any moment
            if r == ROUNDS - 1:
                break  # the clients end while the server is down
            time.sleep(down)
            srv.start()
        print(f"schedule (up s, down s): {schedule}; client 0 killed in round {killed_client_round}")
        t_end = time.monotonic()
        stop.touch()
        errs = {}
        for i, (p, _) in enumerate(clients):
            _, err = p.communicate(timeout=120)
            errs[i] = err
            if i > 0:
                assert p.returncode == 0, (seed, err)
                assert "Traceback" not in err, (seed, err)
        print(f"clients ended in {time.monotonic() - t_end:.1f}s")
        srv.start()
        # Upload every journal: the path each client printed at end(), the killed client's folder.
        journals = {}
        for i, key in enumerate(keys):
            named = re.findall(r"`tallymark upload ([^`]+)`", errs[i])
            assert i == 0 or named, (seed, f"client {i} ended while the server was down", errs[i])
            folder = Path(named[-1].split()[0]) if named else tmp_path / "client-home" / "journal" / key
            if i > 0:
                assert folder == tmp_path / "client-home" / "journal" / key, (seed, named)
            if folder.exists():
                journals[i] = folder
        assert journals, seed
        up = subprocess.run(
            [sys.executable, "-m", "tallymark", "upload", *map(str, journals.values()), "--url", srv.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert up.returncode == 0, (seed, up.stderr)
        print(f"uploaded in {time.monotonic() - t_end:.1f}s")
        total = 0
        for i, key in enumerate(keys):
            flushed, logged, ended = _read_acks(clients[i][1])
            r = httpx.get(f"{srv.url}/api/v1/experiments/{key}/metric", params={"name": "m"}, timeout=60)
            r.raise_for_status()
            steps = r.json()["steps"]
            assert len(steps) == len(set(steps)), (seed, i, "points stored twice")
            assert set(range(flushed)) <= set(steps), (seed, i, flushed, "acknowledged points lost")
            assert set(steps) <= set(range(logged)), (seed, i, "points never logged")
            if i > 0:
                assert ended and len(steps) == flushed, (seed, i, len(steps), flushed)
                status = httpx.get(f"{srv.url}/api/v1/experiments/{key}", timeout=60).json()["status"]
                assert status == "ended", (seed, i)
            total += flushed
        print(f"{total:,} acknowledged points, all stored exactly once, {len(journals)} journals uploaded")
    finally:
        stop.touch()
        for p, _ in clients:
            if p.poll() is None:
                p.kill()
                p.communicate()
        srv.stop()
