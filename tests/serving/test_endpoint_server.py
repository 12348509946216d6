"""An endpoint deployed against a real tallymark server with auth on: the endpoint process loads the
model and reports through the REST API with the deployer's API key; trust needs a workspace admin."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from endpoint_support import booster_predict, data, reaping, register, train, wait_for

from tallymark import API
from tallymark.sdk.transport import TallymarkError
from tallymark.service import apikeys, memberships, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.serving import process
from tallymark.settings import Settings

from servers import ServerProcess


def test_deploy_predict_and_delete_through_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv_home = tmp_path / "srv"
    srv_home.mkdir()
    store = open_store(Settings(home=srv_home))
    try:
        init_admin(store, "root")
        admin = local_admin("root")
        workspaces.create_workspace(store, admin, "risk")
        users.add_user(store, admin, "mia")
        memberships.add_member(store, admin, "risk", "mia", "member")
        mia = apikeys.create_key(store, admin, "mia").secret
    finally:
        store.close()
    client_home = tmp_path / "client"  # the deploying machine's home: endpoint log, model cache, spool
    monkeypatch.setenv("TALLYMARK_HOME", str(client_home))
    monkeypatch.setenv("TALLYMARK_API_KEY", mia)
    with ServerProcess(srv_home, auth=True) as server, reaping():
        monkeypatch.setenv("TALLYMARK_URL", server.url)
        booster = train()
        path = tmp_path / "model.ubj"
        booster.save_model(path)
        version = register(path, url=server.url)
        model = API(url=server.url).get_model("risk", "fraud-xgb")
        with pytest.raises(TallymarkError) as refused:
            model.trust(version, comment="a member may not")
        assert refused.value.status == 403
        ep = model.deploy(version)
        x = data(10, seed=9)[0]
        want = booster_predict(booster, x)
        assert np.array_equal(ep.predict(x), want)
        body = {"inputs": [{"name": "x", "shape": [10, 4], "datatype": "FP64", "data": x.ravel().tolist()}]}
        v2 = httpx.post(f"{ep.url}/v2/models/fraud-xgb/infer", json=body).json()
        assert np.array_equal(np.asarray(v2["outputs"][0]["data"], dtype=np.float32), want)
        row = httpx.get(
            f"{server.url}/api/v1/workspaces/risk/endpoints/{ep.name}",
            headers={"Authorization": f"Bearer {mia}"},
        ).json()
        assert row["status"] == "InService" and row["url"] == ep.url and row["createdBy"] == "mia"
        assert row["model"]["version"] == version
        pid = row["pid"]
        ep.delete()
        wait_for(lambda: not process.alive(pid), what="the endpoint process exiting")
