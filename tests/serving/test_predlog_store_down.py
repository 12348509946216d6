"""The store goes down under a recording endpoint: a real `tallymark server` process is killed and
restarted; the spool grows on disk meanwhile, and every row arrives exactly once, whether the same
process ships it later or the next process on the same spool directory does."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from predlog_support import FEATURES, WS, endpoint_home, wait_for

from tallymark.sdk import predictions as sdk_predictions
from tallymark.sdk.transport import HttpTransport
from tallymark.serving.predlog import PredictionLog

from servers import ServerProcess, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    home = tmp_path / "store"
    endpoint_home(home)
    srv = ServerProcess(home, port=free_port())
    yield srv.start()
    srv.stop()


def _kill(srv: ServerProcess) -> None:
    assert srv.proc is not None
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None


def _record(log: PredictionLog, prefix: str, n: int) -> None:
    for i in range(n):
        x = np.full((5, len(FEATURES)), float(i))
        log.record(f"{prefix}-{i}", 1_000 + i, 100, x, np.full(5, i / 10))


def _new_log(spool: Path, srv: ServerProcess) -> PredictionLog:
    settings = {"url": srv.url, "user": "alice"}
    return PredictionLog(
        "fraud-ep", WS, spool, settings, FEATURES, seal_interval=0.05, retry_max=0.2, log_interval=0.0
    )


def _segments(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.seg"))


def test_the_spool_grows_while_the_store_is_down_and_every_row_arrives_once(tmp_path: Path, server):
    spool = tmp_path / "spool"
    log = _new_log(spool, server)
    _record(log, "a", 20)
    wait_for(lambda: log.stats()["shipped"] == 100, what="the first 100 rows shipped")

    _kill(server)  # the store is down: nothing answers on its port
    _record(log, "b", 20)
    wait_for(lambda: log.stats()["spooled"] == 200 and _segments(spool), what="b spooled and sealed")
    wait_for(lambda: log.stats()["ship_errors"] > 0, what="a failed shipment")
    assert log.stats()["shipped"] == 100 and log.stats()["backlog_bytes"] > 0

    server.start()  # the same home and port: this process ships its backlog by itself
    wait_for(lambda: log.stats()["shipped"] == 200, what="the backlog shipped after the restart")

    _kill(server)
    _record(log, "c", 20)
    stats = log.close(timeout=0.5)  # the process ends with the store still down
    assert stats["spooled"] == 300 and stats["shipped"] == 200 and stats["dropped"] == 0
    left = _segments(spool)
    assert left, "what was not shipped stays in the spool"

    server.start()
    log2 = _new_log(spool, server)  # the next process on the same spool directory
    assert log2.stats()["recovered_segments"] == len(left)
    _record(log2, "d", 4)
    wait_for(lambda: not _segments(spool) and log2.stats()["shipped"] == 120, what="c and d shipped")
    log2.close()

    http = HttpTransport(server.url)
    try:
        t = sdk_predictions.read_predictions(WS, "fraud-ep", transport=http)
    finally:
        http.close()
    keys = list(zip(t.column("request_id").to_pylist(), t.column("row").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == 320, "every row exactly once"
    want = {
        (f"{p}-{i}", r)
        for p, n in (("a", 20), ("b", 20), ("c", 20), ("d", 4))
        for i in range(n)
        for r in range(5)
    }
    assert set(keys) == want
