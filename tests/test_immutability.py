"""What was approved or closed cannot change (docs/artifacts.md, "What cannot change").

Each test replays one way the landed code let it change — through tallymark's REST API or the
Comet adapter, as an attacker would — and checks it is refused and that nothing changed.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from tallymark.service import artifacts, experiments, registry
from tallymark.service.caller import local_admin
from tallymark.store.schema import metadata

from servers import new_key

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check

WS = "risk"
COMET = {"Authorization": "any-key-on-a-no-auth-server"}


ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


@pytest.fixture
def client(client):
    """The shared in-process client, sending an API key as comet_ml does on every request (the
    adapter refuses writes without one: docs/security.md)."""
    client.headers["Authorization"] = "any-key-on-a-no-auth-server"
    return client


def _store(client):
    # the TestClient's app is wrapped in middleware; the store is on the innermost app's state
    app = client.app
    while not hasattr(app, "state"):
        app = app.app
    return app.state.store


def _exp(store, name="e"):
    key = new_key()
    experiments.create_experiment(
        store, local_admin("alice"), {"key": key, "workspace": WS, "project": "fraud", "name": name}
    )
    return key


def _blob(store, data: bytes) -> dict:
    sha, size = store.blobs.put(iter([data]), 1 << 30)
    return {"sha256": sha, "size": size}


def _production_model(store):
    """A dataset version consumed by a training run whose model reached production (four eyes)."""
    prep = _exp(store, "prep")
    data = {"logical_path": "creditcard.csv", **_blob(store, b"a,b\n1,2\n")}
    body = {"artifact_type": "dataset", "aliases": ["train"], "files": [data], "experiment_key": prep}
    ds = artifacts.log_artifact_version(store, local_admin("alice"), WS, "fraud-dataset", body)
    experiments.end_experiment(store, TESTER, prep)
    train = _exp(store, "train")
    artifacts.consume_artifact_version(store, ADMIN, WS, "fraud-dataset", "train", train)
    model_file = {"logical_path": "model.json", **_blob(store, b'{"trees": 1}')}
    registry.log_model(store, ADMIN, train, {"name": "fraud-xgb", "files": [model_file]})
    mv = registry.register_model(
        store,
        local_admin("alice"),
        WS,
        "fraud-xgb",
        {"experiment_key": train, "experiment_model": "fraud-xgb"},
    )
    req = registry.request_status(
        store, local_admin("alice"), WS, "fraud-xgb", mv["version"], {"status": "production"}
    )
    registry.decide(store, local_admin("risk-officer"), req["id"], True, {"comment": "ok"})
    experiments.end_experiment(store, TESTER, train)
    assert registry.get_version(store, ADMIN, WS, "fraud-xgb", mv["version"])["status"] == "production"
    return ds, train, mv


def _files(version: dict) -> list[tuple[str, str | None]]:
    return sorted((f["logicalPath"], f.get("sha256")) for f in version["files"])


def test_a_reopened_experiment_cannot_add_files_to_its_production_model(client):
    store = _store(client)
    _, train, mv = _production_model(store)
    before = _files(registry.get_version(store, ADMIN, WS, "fraud-xgb", mv["version"]))

    r = client.post("/clientlib/logger/get/run", json={"previousExperiment": train}, headers=COMET)
    assert r.status_code == 200  # Comet may resume an ended run ...
    up = client.post(
        "/clientlib/asset/upload",
        params={
            "experimentId": train,
            "fileName": "backdoor.bin",
            "type": "model-element",
            "groupingName": "fraud-xgb",
        },  # fmt: skip
        files={"file": ("file", b"\x7fELF")},
        headers=COMET,
    )
    assert up.status_code == 409, up.text  # ... but the registered model's files are final
    assert "registered as fraud-xgb" in up.json()["msg"] and "new model" in up.json()["msg"]
    after = registry.get_version(store, ADMIN, WS, "fraud-xgb", mv["version"])
    assert _files(after) == before and after["status"] == "production"


def test_a_closed_artifact_version_gains_no_files_after_a_reopen(client):
    store = _store(client)
    producer = _exp(store, "producer")
    up = client.post(
        "/api/rest/v2/write/artifacts/upsert",
        json={"artifactName": "data", "artifactType": "dataset", "experimentKey": producer},
        headers=COMET,
    ).json()
    vid = up["artifactVersionId"]
    ok = client.post(
        "/clientlib/asset/upload",
        params={"experimentId": producer, "fileName": "a.csv", "artifactVersionId": vid},
        files={"file": ("file", b"a\n1\n")},
        headers=COMET,
    )
    assert ok.status_code == 200, ok.text
    client.post("/clientlib/status-report/update", json={"experimentKey": producer, "is_alive": False})

    client.post("/clientlib/logger/get/run", json={"previousExperiment": producer}, headers=COMET)
    poison = {"remoteArtifactAssetRequests": [{"link": "s3://evil/poison.csv", "fileName": "poison.csv",
                                               "artifactVersionId": vid}]}  # fmt: skip
    r = client.post(
        "/clientlib/rest/v2/write/artifact/assets/remote/batch",
        params={"experimentKey": producer},
        json=poison,
        headers=COMET,
    )
    assert r.status_code == 409 and "is closed" in r.json()["msg"], r.text
    late = client.post(
        "/clientlib/asset/upload",
        params={"experimentId": producer, "fileName": "late.csv", "artifactVersionId": vid},
        files={"file": ("file", b"x")},
        headers=COMET,
    )
    assert late.status_code == 409
    assert [
        f["logicalPath"] for f in artifacts.get_artifact_version(store, ADMIN, WS, "data", "1.0.0")["files"]
    ] == ["a.csv"]
    # Comet's own "CLOSED" closes it the same way, while the experiment still runs
    up2 = client.post(
        "/api/rest/v2/write/artifacts/upsert",
        json={"artifactName": "data", "artifactType": "dataset", "experimentKey": producer},
        headers=COMET,
    ).json()
    state = {"artifactVersionId": up2["artifactVersionId"], "experimentKey": producer, "state": "CLOSED"}
    assert client.post("/api/rest/v2/write/artifacts/state", json=state, headers=COMET).status_code == 200
    r = client.post(
        "/clientlib/asset/upload",
        params={"experimentId": producer, "fileName": "b.csv", "artifactVersionId": up2["artifactVersionId"]},
        files={"file": ("file", b"b")},
        headers=COMET,
    )
    assert r.status_code == 409 and "is closed" in r.json()["msg"]


def test_the_training_data_of_a_production_model_cannot_be_deleted(client):
    store = _store(client)
    ds, train, mv = _production_model(store)
    inputs = registry.training_inputs(store, ADMIN, WS, "fraud-xgb", mv["version"])
    assert [f["sha256"] for n in inputs for f in n["files"]] == [ds["files"][0]["sha256"]]

    r = client.delete(f"/api/v1/workspaces/{WS}/artifacts/fraud-dataset/versions/{ds['version']}")
    assert r.status_code == 409, r.text
    assert "input of 1 experiment" in r.json()["error"]["message"]
    again = registry.training_inputs(store, ADMIN, WS, "fraud-xgb", mv["version"])
    assert [f["sha256"] for n in again for f in n["files"]] == [ds["files"][0]["sha256"]]  # 1 -> 1

    # nor the experiment that produced it (its output is the production model's input), nor the trainer
    prep_key = ds["sourceExperimentKey"]
    from tallymark.service import gc
    from tallymark.service.errors import Conflict

    for key in (prep_key, train):
        try:
            gc.delete_experiment(store, local_admin("tester"), key)
        except Conflict as exc:
            assert "kept" in exc.message
        else:
            raise AssertionError(f"experiment {key} was deleted")
    assert len(registry.training_inputs(store, ADMIN, WS, "fraud-xgb", mv["version"])) == 1


def test_comet_error_state_cannot_delete_a_version_made_elsewhere(client):
    store = _store(client)
    ds, train, _ = _production_model(store)
    attacker = _exp(store, "attacker")
    from tallymark.server.compat.comet import translate as tr

    forged = tr.artifact_version_id(WS, "fraud-dataset", ds["version"])
    for key in (attacker, train):
        r = client.post(
            "/api/rest/v2/write/artifacts/state",
            json={"artifactVersionId": forged, "experimentKey": key, "state": "ERROR"},
            headers=COMET,
        )
        assert r.status_code == 409, r.text
    assert (
        artifacts.get_artifact_version(store, ADMIN, WS, "fraud-dataset", ds["version"])["deleted"] is False
    )

    # the experiment still uploading a version may withdraw it (what ERROR is for)
    up = client.post(
        "/api/rest/v2/write/artifacts/upsert",
        json={"artifactName": "partial", "artifactType": "dataset", "experimentKey": attacker},
        headers=COMET,
    ).json()
    state = {"artifactVersionId": up["artifactVersionId"], "experimentKey": attacker, "state": "ERROR"}
    assert client.post("/api/rest/v2/write/artifacts/state", json=state, headers=COMET).status_code == 200


def test_comet_stage_get_does_not_tag_a_model(client):
    store = _store(client)
    _, _, mv = _production_model(store)
    from tallymark.server.compat.comet import translate as tr

    item = tr.make_id("mv", WS, "fraud-xgb", mv["version"])
    r = client.get(
        "/api/rest/v2/write/registry-model/item/stage", params={"modelItemId": item, "stage": "evil"}
    )
    assert r.status_code == 400 and "GET never changes" in r.json()["msg"]
    assert registry.get_version(store, ADMIN, WS, "fraud-xgb", mv["version"])["tags"] == []


def _snapshot(store) -> str:
    h = hashlib.sha256()
    with store.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                h.update(repr((table.name, tuple(row))).encode())
    return h.hexdigest()


def test_no_get_route_changes_state(client):
    """Every GET of the app (REST API, UI, Comet adapter), with real ids filled in: the database is
    byte-for-byte the same afterwards. The one documented exception (Comet's consumption GET with the
    API key header) is not a browser's request, so it is left out by sending no key header."""
    store = _store(client)
    ds, train, mv = _production_model(store)
    client.get("/")  # the UI and Comet routes are built on first use
    client.get("/clientlib/isAlive/ver")
    req = registry.list_requests(store, ADMIN, WS, "fraud-xgb")[0]
    from tallymark.server.compat.comet import translate as tr

    values = {
        "workspace": WS,
        "project": "fraud",
        "key": train,
        "name": "fraud-xgb",
        "version": mv["version"],
        "request_id": str(req["id"]),
        "asset_id": "1",
        "sha256": ds["files"][0]["sha256"],
    }
    query = {
        "experimentKey": train,
        "experimentId": train,
        "consumerExperimentKey": train,
        "workspaceName": WS,
        "workspace": WS,
        "projectName": "fraud",
        "artifactName": "fraud-dataset",
        "modelName": "fraud-xgb",
        "modelItemId": tr.make_id("mv", WS, "fraud-xgb", mv["version"]),
        "stage": "evil",
        "version": ds["version"],
        "node": f"experiment:{train}",
        "keys": train,
    }
    before = _snapshot(store)
    seen = 0
    for route in _routes(client):
        path = route
        for name, value in values.items():
            path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
        if "{" in path:
            path = path.split("{")[0] + "x"
        r = client.get(path, params=query)
        assert r.status_code < 500, (route, r.status_code, r.text[:300])
        seen += 1
        assert _snapshot(store) == before, f"GET {route} changed the database"
    assert seen > 60, seen


def _routes(client):
    """Every GET path of the three apps behind the dispatcher (REST API, Comet adapter, UI)."""
    app = client.app
    while not hasattr(app, "warm"):
        app = app.app
    out = []

    def walk(routes, prefix):
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's included router
                walk(r.original_router.routes, prefix + (r.include_context.prefix or ""))
            elif hasattr(r, "routes") and not hasattr(r, "methods"):
                walk(r.routes, prefix)
            elif "GET" in (getattr(r, "methods", None) or set()):
                out.append(prefix + r.path)

    for sub in (app.api, app.comet.get(), app.ui.get()):
        walk(sub.router.routes, "")
    return out
