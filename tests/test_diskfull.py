"""A full disk, for real (a tiny tmpfs, tests/diskfull.py): the server answers 507 naming what it could
not write and keeps nothing half; the embedded SDK never raises into training code, warns once, keeps
what it can and says at end() what was not saved.

Before: the server answered 500 ("internal error: OperationalError" / "OSError"), ``flush()`` and
``end()`` raised ``sqlite3.OperationalError`` into the training script, and an asset the home had no
room for was reported as "cannot read asset".
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tallymark.service.errors import DiskFull, storage_error

from diskfull import DiskServer, TinyDisk, tallymark_env


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[TinyDisk]:
    with TinyDisk(tmp_path / "disk", size="8m") as d:
        yield d


@pytest.fixture
def server(disk: TinyDisk, tmp_path: Path) -> Iterator[DiskServer]:
    srv = DiskServer(disk, disk.root / "home", tmp_path / "server.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def _batch(i: int) -> dict:
    return {
        "batch_id": uuid.uuid4().hex,
        "params": {f"p{i:02d}": "x" * 2000},
        "metrics": [{"name": "loss", "steps": list(range(i * 500, i * 500 + 500)), "values": [0.5] * 500}],
    }


READ = r"""
import json, sys
from tallymark.service import experiments, reads
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

store = open_store(Settings(home=sys.argv[1]), upgrade=False)
key, me = sys.argv[2], local_admin("tester")
print(json.dumps({
    "params": {p["name"]: p["valueCurrent"] for p in reads.parameters_summary(store, me, key)},
    "metrics": {m["name"]: m["count"] for m in reads.metrics_summary(store, me, key)},
    "status": experiments.get_experiment(store, me, key)["status"],
}))
"""


def _stored(disk: TinyDisk, key: str) -> dict:
    """What the home holds for ``key``, read by a process inside the namespace.

    (SQLite resolves symbolic links in a database path, so it cannot open the file through
    ``/proc/<pid>/root`` from out here.)
    """
    cmd = [sys.executable, "-c", READ, str(disk.root / "home"), key]
    done = disk.run(cmd, env=tallymark_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_server_answers_507_on_a_full_disk_and_keeps_no_batch_half(
    disk: TinyDisk, server: DiskServer
) -> None:
    api = server.url + "/api/v1"
    key = uuid.uuid4().hex
    assert (
        httpx.post(api + "/experiments", json={"key": key, "workspace": "w", "project": "p"}).status_code
        == 201
    )
    disk.fill(leave=256 * 1024)  # room for some batches, not for 49
    statuses: dict[int, int] = {}
    for i in range(49):
        r = httpx.post(f"{api}/experiments/{key}/batch", json=_batch(i), timeout=60)
        statuses[i] = r.status_code
        if r.status_code == 507:
            err = r.json()["error"]
            assert err["code"] == "disk_full"
            assert err["message"].startswith("the server's disk is full: could not write the database")
            assert "database or disk is full" in err["message"]
    assert set(statuses.values()) <= {200, 507}, statuses
    refused = [i for i, s in statuses.items() if s == 507]
    assert refused, "the disk never filled up"

    disk.free()  # no restart: the next write works
    r = httpx.post(f"{api}/experiments/{key}/batch", json=_batch(49), timeout=60)
    assert r.status_code == 200, r.text
    stored = [i for i, s in statuses.items() if s == 200] + [49]

    held = _stored(disk, key)
    assert set(held["params"]) == {f"p{i:02d}" for i in stored}  # a refused batch left no parameter …
    assert held["metrics"]["loss"] == 500 * len(stored)  # … and no metric point behind


def test_an_asset_the_server_has_no_room_for_is_507_naming_it_and_leaves_no_partial_blob(
    disk: TinyDisk, server: DiskServer
) -> None:
    api = server.url + "/api/v1"
    key = uuid.uuid4().hex
    httpx.post(api + "/experiments", json={"key": key, "workspace": "w", "project": "p"}).raise_for_status()
    data = os.urandom(600 * 1024)
    meta = json.dumps({"file_name": "weights.bin", "upload_id": uuid.uuid4().hex})
    disk.fill(leave=300 * 1024)  # half of the file fits: the part written must go away again

    def upload() -> httpx.Response:
        return httpx.post(
            f"{api}/experiments/{key}/assets",
            params={"meta": meta},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )

    r = upload()
    assert r.status_code == 507, r.text
    message = r.json()["error"]["message"]
    assert message.startswith(
        "the server's disk is full: could not write asset 'weights.bin' to the blob store"
    )
    assert "No space left on device" in message and "cannot read" not in message
    blobs = disk.outside(disk.root / "home" / "blobs")
    assert list((blobs / "tmp").iterdir()) == []
    assert httpx.get(f"{api}/experiments/{key}/assets").json()["assets"] == []

    disk.free()
    r = upload()
    assert r.status_code == 201, r.text
    asset_id = r.json()["assetId"]
    assert httpx.get(f"{api}/experiments/{key}/assets/{asset_id}/content").content == data


def test_the_comet_adapter_answers_507_in_comets_shape(disk: TinyDisk, server: DiskServer) -> None:
    key = uuid.uuid4().hex
    httpx.post(
        server.url + "/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p"}
    ).raise_for_status()
    disk.fill()
    r = httpx.post(
        server.url + "/api/rest/v2/write/experiment/parameter",
        json={"experimentKey": key, "parameterName": "lr", "parameterValue": "x" * 100_000},
        headers={"Authorization": "any"},
    )
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["code"] == 507 and body["error"]["code"] == "disk_full"
    assert body["msg"].startswith("tallymark: the server's disk is full: could not write the database")


def test_embedded_memory_for_held_writes_is_bounded_and_what_it_dropped_is_named(
    disk: TinyDisk, tmp_path: Path
) -> None:
    # 100 points fit the budget: the first batch is held, the next one (100 more) is dropped.
    key, out, err = _train(disk, tmp_path, free_before_end=True, HELD_POINTS="150")
    assert "full ok" in out and "end ok" in out, out + err
    assert err.count("dropping a batch of experiment") == 1, err
    assert "1 write(s) with 100 metric point(s)" in err, err  # the dropped one, named at end()
    held = _stored(disk, key)
    assert held["metrics"]["loss"] == 300  # before the disk filled, the held batch, after it freed
    assert held["params"] == {"lr": 0.1} and held["status"] == "ended"


def test_a_comet_upload_the_server_cannot_spool_is_507_not_a_bad_multipart_body(
    disk: TinyDisk, tmp_path: Path
) -> None:
    spool = disk.root / "tmp"  # where the server spools multipart parts: on the full disk too
    disk.outside(spool).mkdir()
    srv = DiskServer(disk, disk.root / "home", tmp_path / "server.log", TMPDIR=str(spool)).wait_ready()
    try:
        key = uuid.uuid4().hex
        httpx.post(
            srv.url + "/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p"}
        ).raise_for_status()

        def upload(name: str) -> httpx.Response:
            return httpx.post(
                srv.url + "/clientlib/asset/upload",
                params={"experimentId": key, "fileName": name},
                files={"file": (name, os.urandom(3 << 20))},  # > 1 MiB: spooled to a file
                headers={"Authorization": "any"},  # comet_ml sends its key on every request
                timeout=60,
            )

        # Python picks its temporary folder on first use (skipping one it cannot write): use it once.
        assert upload("warm-up.bin").status_code == 200
        disk.fill()
        r = upload("weights.bin")
    finally:
        srv.stop()
    assert r.status_code == 507, r.text
    assert "No space left on device" in r.json()["msg"] and "multipart" not in r.json()["msg"]


TRAIN = r"""
import os, sys, tallymark
from tallymark.sdk.transport import LocalTransport

if os.environ.get("HELD_POINTS"):  # a small memory budget for held writes, to see it enforced
    LocalTransport.MAX_HELD_POINTS = int(os.environ["HELD_POINTS"])

def step(label, fn):
    try:
        fn()
        print(label, "ok", flush=True)
    except BaseException as exc:
        print(label, "raised", repr(exc)[:300], flush=True)

def wait():
    sys.stdin.readline()

# send_interval: only flush() sends, so every batch is exactly what the script logged between two.
exp = tallymark.Experiment(project_name="p", workspace="w", log_code=False, log_env=False,
                           log_git=False, log_system_metrics=False, capture_stdout=False,
                           send_interval=3600)
for i in range(100):
    exp.log_metric("loss", 1.0, step=i)
exp.flush()
print("key", exp.get_key(), flush=True)
wait()                                     # the test fills the disk

def full_phase():
    for i in range(100, 200):
        exp.log_metric("loss", 1.0, step=i)
    exp.log_parameter("lr", 0.1)
    exp.flush()
    exp.log_asset(__file__, file_name="train.py")
    exp.flush()
    for i in range(200, 300):
        exp.log_metric("loss", 1.0, step=i)
    exp.flush()
step("full", full_phase)
print("waiting", flush=True)
wait()                                     # the test frees the disk, or not
def after():
    for i in range(300, 400):
        exp.log_metric("loss", 1.0, step=i)
    exp.end()
step("end", after)
"""


def _train(disk: TinyDisk, tmp_path: Path, free_before_end: bool, **env: str) -> tuple[str, str, str]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = tallymark_env(TALLYMARK_HOME=str(disk.root / "home"), **env)
    proc = disk.popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin and proc.stdout
        first = proc.stdout.readline()
        assert first.startswith("key "), first + (proc.stderr.read() if proc.stderr else "")
        key = first.split()[1]
        disk.fill()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        lines = []
        while (line := proc.stdout.readline()) and line.strip() != "waiting":
            lines.append(line)
        if free_before_end:
            disk.free()
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return key, "".join(lines) + out, err


def test_embedded_training_on_a_full_disk_never_raises_and_writes_what_it_held_once_there_is_room(
    disk: TinyDisk, tmp_path: Path
) -> None:
    key, out, err = _train(disk, tmp_path, free_before_end=True)
    assert "full ok" in out and "end ok" in out, out + err
    assert err.count("is full") >= 1 and err.count("keeping what is logged in memory") == 1, err
    assert "has room again" in err
    # The asset the home had no room for: the real cause, not "cannot read asset".
    assert "could not write asset 'train.py' to the blob store ([Errno 28] No space left on device)" in err
    assert "cannot read asset" not in err
    held = _stored(disk, key)
    assert held["metrics"]["loss"] == 400  # every point logged while the disk was full, written later
    assert held["params"] == {"lr": 0.1}
    assert held["status"] == "ended"


def test_embedded_end_on_a_full_disk_never_raises_and_says_what_was_not_saved(
    disk: TinyDisk, tmp_path: Path
) -> None:
    key, out, err = _train(disk, tmp_path, free_before_end=False)
    assert "full ok" in out and "end ok" in out, out + err
    assert err.count("keeping what is logged in memory") == 1, err
    home = disk.root / "home"
    assert f"not saved for lack of space in the tallymark home {home}: " in err, err
    # 200 points while full + 100 before end; the end itself is named too.
    assert "300 metric point(s) (including the experiment's end)" in err, err
    assert "1 asset(s): 'train.py'" in err
    disk.free()
    held = _stored(disk, key)
    assert held["metrics"]["loss"] == 100  # what was flushed before the disk filled is all there
    assert held["status"] == "running"  # its end was not saved, and the warning said so


def test_disk_full_errors_of_every_backend_map_to_one_507() -> None:
    import sqlite3

    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    pg = OperationalError("INSERT …", {}, psycopg.errors.DiskFull("could not extend file: No space left"))
    lite = OperationalError("INSERT …", {}, sqlite3.OperationalError("database or disk is full"))
    blob = OSError(errno.ENOSPC, "No space left on device")
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    for exc in (pg, lite, blob, quota):
        found = storage_error(exc, "the database")
        assert isinstance(found, DiskFull) and found.status == 507, exc
        assert found.message.startswith("the server's disk is full: could not write the database (")
    assert storage_error(OSError(errno.EIO, "I/O error"), "x") is None  # other errors keep their name
    assert storage_error(ValueError("database or disk is full"), "x") is None


def test_an_embedded_asset_the_store_cannot_take_names_the_store_not_the_file(tmp_path: Path) -> None:
    import shutil

    from tallymark.sdk.transport import LocalTransport, TallymarkError

    home = tmp_path / "home"
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    t = LocalTransport(home)
    try:
        key = uuid.uuid4().hex
        t.create_experiment({"key": key, "workspace": "w", "project": "p", "user": "u"})
        # A file that really cannot be read stays an OSError about that file (the sender says so).
        with pytest.raises(FileNotFoundError):
            t.upload_asset(key, {"file_name": "gone.bin"}, tmp_path / "gone.bin")
        shutil.rmtree(home / "blobs" / "tmp")
        (home / "blobs" / "tmp").write_text("in the way")  # the store's own folder is broken
        with pytest.raises(TallymarkError) as refused:
            t.upload_asset(key, {"file_name": "model.bin"}, source)
        assert f"could not store asset 'model.bin' in {home}: [Errno 17] File exists" in refused.value.message
    finally:
        t.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgresql_disk_full_is_507_and_keeps_no_batch_half(tmp_path: Path) -> None:
    """PostgreSQL's own "could not extend file …: No space left on device" (SQLSTATE 53100).

    Only a tablespace lives on the tiny disk (its WAL does not: PostgreSQL stops on a full WAL disk
    by design, and that is an operator's alarm, not a request's error).
    """

    import pgserver

    if (reason := pgserver.unavailable_reason()) is not None:
        if pgserver.required_by_env():
            pytest.fail(f"{pgserver.REQUIRE_ENV}=1 but no PostgreSQL server can be started: {reason}")
        pytest.skip(f"PostgreSQL not available: {reason}")
    # Not under tmp_path: the postgres OS user must be able to reach the tablespace folder.
    mountpoint = Path(tempfile.mkdtemp(prefix="tallymark-tiny-"))
    mountpoint.chmod(0o755)
    try:
        with TinyDisk(mountpoint, size="8m") as disk:
            _postgresql_disk_full(disk, tmp_path, pgserver)
    finally:
        mountpoint.rmdir()


def _postgresql_disk_full(disk: TinyDisk, tmp_path: Path, pgserver: Any) -> None:
    import psycopg

    class PostgresInTheNamespace(pgserver.PostgresServer):
        def _as_postgres_user(self) -> tuple[list[str], dict[str, object]]:
            prefix, kwargs = super()._as_postgres_user()
            return disk.command(prefix, cwd="/"), kwargs  # the postmaster sees the tiny disk

    space = disk.root / "tablespace"
    disk.outside(space).mkdir()
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam(pgserver._os_user())
        os.chown(disk.outside(space), pw.pw_uid, pw.pw_gid)
    with PostgresInTheNamespace() as pg:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE tiny LOCATION '{space}'")
            conn.execute("CREATE DATABASE tm TABLESPACE tiny")
        srv = DiskServer(disk, tmp_path / "home", tmp_path / "server.log", TALLYMARK_DB=pg.url_for("tm"))
        try:
            srv.wait_ready()
            api = srv.url + "/api/v1"
            key = uuid.uuid4().hex
            body = {"key": key, "workspace": "w", "project": "p"}
            assert httpx.post(api + "/experiments", json=body).status_code == 201
            disk.fill()
            statuses = {}
            for i in range(10):
                r = httpx.post(f"{api}/experiments/{key}/batch", json=_batch(i), timeout=60)
                statuses[i] = r.status_code
                if r.status_code == 507:
                    message = r.json()["error"]["message"]
                    assert message.startswith("the server's disk is full: could not write the database")
                    assert "postgresql:" in message and "No space left on device" in message
            assert set(statuses.values()) <= {200, 507} and 507 in statuses.values(), statuses
            disk.free()
            assert (
                httpx.post(f"{api}/experiments/{key}/batch", json=_batch(10), timeout=60).status_code == 200
            )
            stored = [i for i, s in statuses.items() if s == 200] + [10]
            params = httpx.get(f"{api}/experiments/{key}/params").json()["params"]
            assert {p["name"] for p in params} == {f"p{i:02d}" for i in stored}
        finally:
            srv.stop()
