"""A writer SIGKILLed mid-stream: the next process on the spool cuts the torn tail of the segment
being written (never shipping it), seals what was whole and ships it; each row that arrives is
intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from predlog_support import FEATURES, WS, endpoint_home, wait_for

from tallymark.sdk import predictions as sdk_predictions
from tallymark.sdk.transport import LocalTransport
from tallymark.serving.predlog import PredictionLog
from tallymark.serving.spool import FRAME_HEADER, read_frames

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pathlib import Path
    from tallymark.serving.predlog import PredictionLog

    features = [f"V{i}" for i in range(1, 31)]
    log = PredictionLog("fraud-ep", "risk", Path(sys.argv[1]), {}, features, ship=False,
                        linger=0.001, seal_interval=0.1, segment_bytes=64 << 20)
    i = 0
    told = False
    while True:
        log.record(f"r{i}", i, 7, np.full((50, 30), float(i)), np.full(50, i / 1000))
        i += 1
        if log.stats()["spooled"] >= 20_000:
            log.seal_interval = 1e9  # from now on one segment stays open: the kill tears it
            if not told and log.spool.open_frames:
                print("spooling", flush=True)
                told = True
        time.sleep(0.0002)
    """
)


def test_a_killed_writer_leaves_a_torn_tail_that_is_cut_and_never_shipped(tmp_path: Path):
    spool = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(spool)], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"spooling\n"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    opened = list(spool.glob("*.open"))
    assert len(opened) == 1, sorted(p.name for p in spool.iterdir())
    # What a power cut adds to a kill: the last frame only partly on disk.
    data = opened[0].read_bytes()
    frames, whole = read_frames(data)
    if whole == len(data) and frames:
        with opened[0].open("ab") as f:
            f.write((FRAME_HEADER.pack(b"TMP1", len(frames[0]), 0) + frames[0])[: len(frames[0]) // 2])
    torn = opened[0].stat().st_size - whole

    home = tmp_path / "home"
    endpoint_home(home)
    local = LocalTransport(home)
    try:
        log = PredictionLog("fraud-ep", WS, spool, {}, FEATURES, transport=local, seal_interval=0.05)
        stats = log.stats()
        assert stats["torn_bytes_cut"] == torn > 0
        wait_for(lambda: not list(spool.glob("*.seg")), what="the recovered segments shipped")
        log.close()
        t = sdk_predictions.read_predictions(WS, "fraud-ep", transport=local, with_labels=False)
    finally:
        local.close()
    df = t.to_pandas()
    assert len(df) >= 20_000 and len(df) % 50 == 0
    n = df.request_id.str[1:].astype(int)
    assert sorted(set(n)) == list(range(len(df) // 50)), "a whole prefix of the records, none twice"
    assert (df["V17"] == n).all() and (df["at"] == n).all() and np.allclose(df["prediction"], n / 1000)
    assert not list(spool.glob("*.open")) and not (spool / "rejected").exists()
