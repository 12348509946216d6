"""Endpoint lifecycle with real processes: deploy, delete (here and "from elsewhere"), failing starts
(bad model file, tampered blob, port taken) leave a Failed row and no process, pickles are refused
until a workspace admin trusts the version, @status aliases, the CLI."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from endpoint_support import Reaper, booster_predict, data, reaping, register, train, wait_for
from typer.testing import CliRunner

from tallymark import API
from tallymark.sdk.endpoint import EndpointError
from tallymark.serving import process

WS = "risk"


@pytest.fixture
def reaper(home: Path) -> Iterator[Reaper]:
    with reaping() as r:
        yield r


@pytest.fixture
def version(home: Path) -> str:
    path = home.parent / "model.ubj"
    train().save_model(path)
    return register(path)


def _gone(r: Reaper) -> bool:
    return all(p.poll() is not None for p in r.procs)


def test_delete_stops_the_process_and_a_delete_elsewhere_is_noticed(
    home: Path, version: str, reaper: Reaper
) -> None:
    model = API().get_model(WS, "fraud-xgb")
    ep = model.deploy(version, name="here")
    pid = ep.describe()["pid"]
    assert process.alive(pid)
    ep.delete()
    assert not process.alive(pid) and ep.describe()["status"] == "Deleted"
    assert ep.describe()["processAlive"] is False

    # a delete through the store alone (as from another machine): the process sees the row and exits
    other = model.deploy(version, name="elsewhere")
    pid = other.describe()["pid"]
    model._t.call("delete_endpoint", workspace=WS, name="elsewhere")
    wait_for(lambda: not process.alive(pid), what="the endpoint process exiting after its row was deleted")
    assert "stops: it was deleted" in (home / "endpoints" / "elsewhere" / "endpoint.log").read_text()

    # a deleted name can be deployed again
    again = model.deploy(version, name="here")
    assert again.describe()["status"] == "InService"
    again.delete()
    wait_for(lambda: _gone(reaper), what="all endpoint processes ending")


def test_port_taken_fails_with_the_reason_and_no_process(home: Path, version: str, reaper: Reaper) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(EndpointError, match=f"port {port} on 127.0.0.1 is already in use"):
            API().get_model(WS, "fraud-xgb").deploy(version, name="taken", port=port)
    info = API().get_model(WS, "fraud-xgb")._t.call("get_endpoint", workspace=WS, name="taken")
    assert info["status"] == "Failed" and "already in use" in info["failureReason"]
    wait_for(lambda: _gone(reaper), what="the failed endpoint process exiting")


def test_a_file_that_is_not_a_model_and_a_tampered_blob_fail(home: Path, reaper: Reaper) -> None:
    bad = home.parent / "model.ubj"
    bad.write_bytes(b"{this is not a model")
    v = register(bad, model="broken")
    with pytest.raises(EndpointError, match="not an XGBoost UBJ model"):
        API().get_model(WS, "broken").deploy(v)
    t = API().get_model(WS, "broken")._t
    assert t.call("list_endpoints", workspace=WS)[0]["status"] == "Failed"

    good = home.parent / "good.ubj"
    train().save_model(good)
    v = register(good, model="tampered", metadata={"format": "ubj", "model_file": "good.ubj"})
    sha = API().get_model(WS, "tampered").get_details(v)["files"][0]["sha256"]
    blob = next(p for p in (home / "blobs").rglob("*") if p.is_file() and p.name.startswith(sha))
    blob.chmod(0o644)
    raw = bytearray(blob.read_bytes())
    raw[-3] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(EndpointError, match=r"sha256|hash"):
        API().get_model(WS, "tampered").deploy(v)
    wait_for(lambda: _gone(reaper), what="the failed endpoint processes exiting")


def test_a_pickle_is_refused_until_an_admin_trusts_it(home: Path, reaper: Reaper) -> None:
    booster = train()
    path = home.parent / "model.pkl"
    path.write_bytes(pickle.dumps(booster))
    v = register(path, model="pickled", metadata={"framework": "xgboost", "model_file": "model.pkl"})
    model = API().get_model(WS, "pickled")
    with pytest.raises(EndpointError, match="stored as a pickle .*tallymark models trust risk pickled"):
        model.deploy(v)
    assert reaper.procs == []  # refused before any process started
    out = model.trust(v, comment="our own training job's file, checked by hash")
    assert out["trustedBy"] == "alice"
    ep = model.deploy(v)
    x = data(20, seed=5)[0]
    assert np.array_equal(ep.predict(x), booster_predict(booster, x))
    log = (home / "endpoints" / ep.name / "endpoint.log").read_text()
    assert "unpickling model.pkl" in log and "alice trusted this version" in log
    ep.delete()
    entries = [e for e in _audit(home) if e["action"] == "model_version.trust"]
    assert entries and entries[0]["object"].endswith(f"pickled:{v}")


def _audit(home: Path) -> list[dict[str, str]]:
    from sqlalchemy import select

    from tallymark.service.store import open_store
    from tallymark.settings import Settings
    from tallymark.store.schema import audit_log

    store = open_store(Settings(home=home))
    try:
        with store.db.read() as conn:
            rows = conn.execute(select(audit_log)).all()
        return [{"action": r.action, "object": f"{r.object_kind}:{r.object_ref}"} for r in rows]
    finally:
        store.close()


def test_status_aliases_and_the_cli(home: Path, version: str, reaper: Reaper) -> None:
    from tallymark.cli import app

    model = API().get_model(WS, "fraud-xgb")
    with pytest.raises(EndpointError, match="no version in production"):
        model.deploy("@production")
    model.set_status(version, "staging")
    runner = CliRunner()
    r = runner.invoke(app, ["deploy", WS, "fraud-xgb", "@staging", "--name", "cli-ep", "--port", "0"])
    assert r.exit_code == 0, r.output
    assert "InService" in r.output and "cli-ep" in r.output
    r = runner.invoke(app, ["endpoints", "list", WS])
    assert r.exit_code == 0 and "cli-ep" in r.output and "running" in r.output, r.output
    r = runner.invoke(app, ["endpoints", "show", WS, "cli-ep"])
    assert r.exit_code == 0 and f"fraud-xgb:{version}" in r.output, r.output
    pid = model._t.call("get_endpoint", workspace=WS, name="cli-ep")["pid"]
    r = runner.invoke(app, ["endpoints", "delete", WS, "cli-ep"])
    assert r.exit_code == 0 and "process stopped" in r.output, r.output
    assert not process.alive(pid)
    r = runner.invoke(app, ["deploy", WS, "fraud-xgb", "9.9.9"])
    assert r.exit_code == 1 and "no version '9.9.9'" in r.output
    r = runner.invoke(app, ["models", "trust", WS, "fraud-xgb", version, "--comment", "ok"])
    assert r.exit_code == 0 and "trusted" in r.output, r.output


def test_the_process_started_by_hand_loads_from_the_store_itself(
    home: Path, version: str, reaper: Reaper
) -> None:
    """``python -m tallymark.serving --workspace WS --endpoint NAME`` (no launch file): it reads its
    row, fetches the model through the store, reports InService itself, serves, and exits on delete."""
    import httpx

    from tallymark.sdk.transport import LocalTransport

    t = LocalTransport()
    t.call(
        "create_endpoint", workspace=WS, body={"model": "fraud-xgb", "version": version, "name": "by-hand"}
    )
    started = process.spawn(t.client, WS, "by-hand", "127.0.0.1", 0)
    where = process.wait_ready(started)
    row = t.call("get_endpoint", workspace=WS, name="by-hand")
    assert row["status"] == "InService" and row["pid"] == where["pid"] == started.proc.pid
    x = data(5, seed=1)[0]
    r = httpx.post(where["url"] + "/predict", json={"data": x.tolist()})
    assert r.status_code == 200, r.text
    t.call("delete_endpoint", workspace=WS, name="by-hand")
    assert started.proc.wait(20) == 0
