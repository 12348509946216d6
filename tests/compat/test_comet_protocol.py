"""The Comet wire protocol through an in-process client (no comet-ml needed): exact content types,
Comet's error shape, idempotent retries, the artifact steps, four eyes on Production, nothing a 500;
plus the pure translation helpers and the offline-archive reader on a hand-made archive."""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest

from tallymark.server.compat.comet import translate as tr

KEY_HEADERS = {"Authorization": "any-key-on-a-no-auth-server"}


@pytest.fixture
def client(client):
    """The shared in-process client, sending an API key as comet_ml does on every request (the
    adapter refuses writes without one: docs/security.md)."""
    client.headers["Authorization"] = "any-key-on-a-no-auth-server"
    return client


def _key() -> str:
    return uuid.uuid4().hex


def _create(client, key=None, ws="w", project="p", **extra):
    key = key or _key()
    body = {"apiKey": "k", "experimentKey": key, "projectName": project, "teamName": ws, "offline": False}
    r = client.post("/clientlib/logger/add/run", json=body | extra, headers=KEY_HEADERS)
    return key, r


def _comet_error(r, status, fragment=""):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["code"] == status and body["sdk_error_code"] == tr.BACKEND_CUSTOM_ERROR or status == 400
    assert fragment.lower() in body["msg"].lower(), body["msg"]
    return body


def test_version_ping_and_content_type_exactly_json(client):
    r = client.get("/clientlib/isAlive/ver")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"version": tr.BACKEND_VERSION}
    assert client.get("/clientlib/health/ping").status_code == 200


@pytest.mark.parametrize("root", ["/clientlib", "/api/rest/v2", "/clientlib/rest/v2"])
def test_unknown_endpoints_answer_a_comet_404(client, root):
    r = client.post(f"{root}/no/such/thing", json={})
    body = _comet_error(r, 404, "not supported")
    assert body["msg"].startswith("tallymark: ")


def test_unsupported_calls_answer_a_clear_4xx(client):
    key, _ = _create(client)
    r = client.post("/api/rest/v2/write/experiment/html", json={"experimentKey": key, "html": "<b>"})
    _comet_error(r, 400, "log_html is not supported")
    r = client.post("/clientlib/asset/asset-item", files={"file": ("f", b"x")})
    _comet_error(r, 400, "3D point clouds")


def test_create_handshake_heartbeat_end_and_resume(client):
    key, r = _create(client, ws="risk", project="fraud")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    hs = r.json()
    assert hs["runId"] and hs["featureToggles"] == [] and hs["s3DirectAccessEnabled"] is False
    assert hs["project_id"] == tr.project_id("risk", "fraud")
    assert hs["focusUrl"].endswith("/risk/fraud/")  # the SDK prints focusUrl + key
    exp = client.get(f"/api/v1/experiments/{key}").json()
    assert (exp["workspace"], exp["project"], exp["status"]) == ("risk", "fraud", "running")

    beat = client.post("/clientlib/status-report/update", json={"experimentKey": key, "is_alive": True})
    assert beat.json()["is_alive_beat_duration_millis"] > 0 and "gpu_monitor_interval_millis" in beat.json()
    client.post("/clientlib/status-report/update", json={"experimentKey": key, "is_alive": False})
    assert client.get(f"/api/v1/experiments/{key}").json()["status"] == "ended"

    # an archive uploaded twice is refused like Comet does; ExistingExperiment reopens an ended run
    _, again = _create(client, key=key, ws="risk", project="fraud", offline=True)
    assert again.status_code == 400 and again.json()["sdk_error_code"] == tr.EXPERIMENT_ALREADY_EXISTS
    r = client.post("/clientlib/logger/get/run", json={"previousExperiment": key})
    assert r.status_code == 200 and r.json()["runId"] == key
    assert client.get(f"/api/v1/experiments/{key}").json()["status"] == "running"
    r = client.post("/clientlib/logger/get/run", json={"previousExperiment": _key()})
    assert r.status_code == 400 and r.json()["sdk_error_code"] == tr.EXPERIMENT_NOT_FOUND


def test_custom_keys_that_are_not_tallymark_keys_are_refused(client):
    _, r = _create(client, key="my-own-key-000000000000000000000000000")
    _comet_error(r, 400, "not a tallymark experiment key")


def test_gzip_metric_batches_are_applied_once(client):
    key, _ = _create(client)
    body = {
        "experimentKey": key,
        "values": [
            {"metricName": "auc", "metricValue": 0.5, "step": 0, "epoch": 0, "timestamp": 1_700_000_000_000},
            {
                "metricName": "auc",
                "metricValue": "NaN",
                "step": 1,
                "epoch": 0,
                "timestamp": 1_700_000_000_001,
            },
            {"metricName": "n", "metricValue": 2**62 + 1, "step": None, "timestamp": 1_700_000_000_002},
        ],
    }
    raw = gzip.compress(json.dumps(body).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json;charset=utf-8"}
    for _ in range(2):  # the SDK retries; a retried batch is not applied twice
        r = client.post("/clientlib/batch/logger/experiment/metric", content=raw, headers=headers)
        assert r.status_code == 200, r.text
    m = client.get(f"/api/v1/experiments/{key}/metric", params={"name": "auc"}).json()
    assert m["steps"] == [0, 1] and m["values"] == [0.5, "NaN"] and m["epochs"] == [0, 0]
    n = client.get(f"/api/v1/experiments/{key}/metric", params={"name": "n"}).json()
    assert n["steps"] == [0] and n["values"] == [2**62 + 1]

    got = client.get(
        "/api/rest/v2/experiment/metrics/get-metric", params={"experimentKey": key, "metricName": "auc"}
    )
    assert got.headers["content-type"] == "application/json"
    assert [(p["step"], p["metricValue"]) for p in got.json()["metrics"]] == [(0, "0.5"), (1, "NaN")]


def test_text_metric_values_are_refused_and_the_rest_is_kept(client):
    key, _ = _create(client)
    body = {
        "experimentKey": key,
        "values": [
            {"metricName": "ok", "metricValue": 1.5, "step": 3},
            {"metricName": "label", "metricValue": "cat", "step": 3},
        ],
    }
    r = client.post("/clientlib/batch/logger/experiment/metric", json=body)
    _comet_error(r, 400, "metric 'label'")
    assert client.get(f"/api/v1/experiments/{key}/metric", params={"name": "ok"}).json()["values"] == [1.5]


def test_parameters_nested_names_and_others(client):
    key, _ = _create(client)
    values = [
        {"parameterName": "opt|lr", "parameterValue": 0.1, "step": None, "source": "manual"},
        {"parameterName": "layers", "parameterValue": [1, 2], "step": None, "source": "manual"},
    ]
    client.post("/clientlib/batch/logger/experiment/parameter", json={"experimentKey": key, "values": values})
    client.post(
        "/api/rest/v2/write/experiment/log-other",
        json={"experimentKey": key, "key": "hasNestedParams", "value": True},
    )
    client.post(
        "/api/rest/v2/write/experiment/log-other",
        json={"experimentKey": key, "key": "Name", "value": "run-1"},
    )
    params = {
        p["name"]: p["valueCurrent"] for p in client.get(f"/api/v1/experiments/{key}/params").json()["params"]
    }
    assert params == {"opt.lr": 0.1, "layers": [1, 2]}
    assert client.get(f"/api/v1/experiments/{key}").json()["name"] == "run-1"
    comet = client.get("/api/rest/v2/experiment/parameters", params={"experimentKey": key}).json()["values"]
    assert {p["name"]: p["valueCurrent"] for p in comet} == {"opt|lr": "0.1", "layers": "[1, 2]"}


def _upload(client, key, data, name, **params):
    q = {"experimentId": key, "fileName": name, **params}
    return client.post("/clientlib/asset/upload", params=q, files={"file": ("file", data)})


def test_uploads_become_items_and_assets(client):
    key, _ = _create(client)
    cm = {"title": "CM", "labels": ["Normal", "Fraud"], "matrix": [[5, 1], [0, 4]], "version": 1}
    assert (
        _upload(
            client, key, json.dumps(cm).encode(), "confusion-matrix.json", type="confusion-matrix", step=2
        ).status_code
        == 200
    )
    curve = {"x": [0, 1], "y": [0, 1], "name": "roc"}
    assert _upload(client, key, json.dumps(curve).encode(), "roc", type="curve").status_code == 200
    r = _upload(client, key, b"a,b\n1,x\n", "t.csv", assetId="abc123")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    _upload(client, key, b"a,b\n1,x\n", "t.csv", assetId="abc123")  # a retried upload is one asset
    items = lambda kind: client.get(f"/api/v1/experiments/{key}/items", params={"kind": kind}).json()["items"]  # noqa: E731
    assert items("confusion_matrix")[0]["data"] == {
        "matrix": [[5, 1], [0, 4]],
        "labels": ["Normal", "Fraud"],
        "title": "CM",
    }
    assert items("confusion_matrix")[0]["step"] == 2
    assert items("curve")[0]["name"] == "roc" and items("curve")[0]["data"] == {"x": [0, 1], "y": [0, 1]}
    assert items("table")[0]["data"] == {"columns": ["a", "b"], "rows": [[1, "x"]]}
    assets = client.get(f"/api/v1/experiments/{key}/assets").json()["assets"]
    assert [a["fileName"] for a in assets] == ["t.csv"]
    listed = client.get("/api/rest/v2/experiment/asset/list", params={"experimentKey": key}).json()["assets"]
    got = client.get(
        "/api/rest/v2/experiment/asset/get-asset",
        params={"experimentKey": key, "assetId": listed[0]["assetId"]},
    )
    assert got.content == b"a,b\n1,x\n"
    bad = _upload(client, key, b"not json", "cm.json", type="confusion-matrix")
    _comet_error(bad, 400, "confusion matrix is not JSON")


def test_offline_replay_late_uploads_are_accepted_from_its_own_session_only(client, tmp_path):
    """``comet upload`` sends the end before its upload threads finish (it did in 2 of 3 runs)."""
    key, r = _create(client, ws="w", project="offline", offline=True)
    token = r.json()["runId"]
    assert token != key  # the import session's token, shown once
    beat = {"experimentKey": key, "runId": token, "offline": True}
    client.post("/clientlib/status-report/update", json=beat | {"is_alive": True})
    client.post("/clientlib/status-report/update", json=beat | {"is_alive": False})
    times = {"experimentKey": key, "runId": token, "startTimestamp": 1_700_000_000_000,
             "endTimestamp": 1_700_000_060_000}  # fmt: skip
    assert client.post("/clientlib/status-report/offline-metadata", json=times).status_code == 200
    exp = client.get(f"/api/v1/experiments/{key}").json()
    assert exp["status"] == "ended" and exp["ended_at"] == 1_700_000_060_000  # the archive's end

    # the replay's uploads still in flight: accepted (an asset, a curve, the git patch)
    assert _upload(client, key, b"late", "late.txt", runId=token).status_code == 200
    curve = json.dumps({"x": [0, 1], "y": [0, 1], "name": "roc"}).encode()
    assert _upload(client, key, curve, "roc", type="curve", runId=token).status_code == 200
    # anyone else (no token, a wrong one, the key itself) gets the ended experiment's refusal
    for other in ({}, {"runId": "0" * 32}, {"runId": key}):
        _comet_error(_upload(client, key, b"x", "intruder.txt", **other), 409, "has ended")
    names = [a["fileName"] for a in client.get(f"/api/v1/experiments/{key}/assets").json()["assets"]]
    assert names == ["late.txt"]

    # once the lease lapses the experiment is sealed, token or not
    from sqlalchemy import create_engine, update

    from tallymark.store.schema import experiments

    engine = create_engine(f"sqlite:///{tmp_path / 'srv' / 'tallymark.db'}")
    with engine.begin() as conn:
        conn.execute(update(experiments).where(experiments.c.key == key).values(import_until=1))
    engine.dispose()
    _comet_error(_upload(client, key, b"x", "too-late.txt", runId=token), 409, "has ended")

    # a plain end (a live run, no session) opens no lease at all
    live, _ = _create(client)
    client.post("/clientlib/status-report/update", json={"experimentKey": live, "is_alive": False})
    _comet_error(_upload(client, live, b"x", "late.txt", runId=live), 409, "has ended")


def test_git_patch_is_unzipped_and_merged_with_the_metadata(client):
    key, _ = _create(client)
    meta = {
        "experimentKey": key,
        "user": "u",
        "root": "a" * 40,
        "branch": "refs/heads/main",
        "parent": "b" * 40,
        "origin": None,
    }
    client.post("/api/rest/v2/write/experiment/git/metadata", json=meta)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("git_diff.patch", "-x = 1\n+x = 2\n")
    r = client.post(
        "/clientlib/git-patch/upload", params={"experimentId": key}, files={"file": ("file", buf.getvalue())}
    )
    assert r.status_code == 200, r.text
    (git,) = client.get(f"/api/v1/experiments/{key}/items", params={"kind": "git"}).json()["items"]
    assert git["data"]["branch"] == "main" and git["data"]["commit"] == "b" * 40
    assert git["data"]["diff"] == "-x = 1\n+x = 2\n" and git["data"]["is_dirty"] is True


def test_artifact_steps_lineage_and_errors(client):
    producer, _ = _create(client, ws="ws")
    up = client.post(
        "/api/rest/v2/write/artifacts/upsert",
        json={
            "artifactName": "data",
            "artifactType": "dataset",
            "experimentKey": producer,
            "alias": ["raw"],
            "versionMetadata": '{"rows": 3}',
        },
    )
    assert up.status_code == 200, up.text
    up = up.json()
    assert up["currentVersion"] == "1.0.0" and up["previousVersion"] is None
    vid = up["artifactVersionId"]
    r = _upload(client, producer, b"hello\n", "files/a.txt", artifactVersionId=vid, assetId="a1")
    assert r.status_code == 200, r.text
    remote = {
        "remoteArtifactAssetRequests": [
            {"link": "s3://b/x.csv", "fileName": "x.csv", "artifactVersionId": vid, "metadata": '{"k": 1}'}
        ]
    }
    r = client.post(
        "/clientlib/rest/v2/write/artifact/assets/remote/batch",
        params={"experimentKey": producer},
        json=remote,
    )
    assert r.status_code == 200, r.text
    assert (
        client.post(
            "/api/rest/v2/write/artifacts/state",
            json={"artifactVersionId": vid, "experimentKey": producer, "state": "CLOSED"},
        ).status_code
        == 200
    )

    consumer, _ = _create(client, ws="ws")
    got = client.get(
        "/api/rest/v2/artifacts/version",
        params={"artifactName": "data", "versionOrAlias": "raw", "consumerExperimentKey": consumer},
        headers=KEY_HEADERS,
    )
    assert got.status_code == 200, got.text
    v = got.json()
    assert (
        v["artifactVersion"] == "1.0.0" and v["alias"] == ["raw"] and json.loads(v["metadata"]) == {"rows": 3}
    )
    assert v["experimentKey"] == producer and v["sizeInBytes"] == 6
    lineage = client.get("/api/v1/lineage", params={"node": f"experiment:{consumer}"}).json()
    assert {
        "src": "artifact:ws/data:1.0.0",
        "dst": f"experiment:{consumer}",
        "relation": "consumed",
    } in lineage["edges"]
    files = client.get(
        "/api/rest/v2/artifacts/version/files",
        params={"workspace": "ws", "artifactName": "data", "version": "1.0.0"},
    ).json()["files"]
    by_name = {f["fileName"]: f for f in files}
    assert by_name["x.csv"]["remote"] is True and by_name["x.csv"]["link"] == "s3://b/x.csv"
    blob = client.get(
        "/api/rest/v2/experiment/asset/get-asset",
        params={"assetId": by_name["files/a.txt"]["assetId"], "artifactVersionId": vid},
    )
    assert blob.content == b"hello\n"

    # another experiment cannot add files to it; a version whose upload failed is withdrawn
    r = _upload(client, consumer, b"x", "other.txt", artifactVersionId=vid)
    _comet_error(r, 409, "was not created by experiment")
    up2 = client.post(
        "/api/rest/v2/write/artifacts/upsert",
        json={"artifactName": "data", "artifactType": "dataset", "experimentKey": producer},
    ).json()
    assert up2["currentVersion"] == "2.0.0" and up2["previousVersion"] == "1.0.0"
    client.post(
        "/api/rest/v2/write/artifacts/state",
        json={"artifactVersionId": up2["artifactVersionId"], "experimentKey": producer, "state": "ERROR"},
    )
    r = client.get(
        "/api/rest/v2/artifacts/version",
        params={"workspace": "ws", "artifactName": "data", "version": "2.0.0"},
    )
    assert r.status_code == 404 and r.json()["sdk_error_code"] == tr.ARTIFACT_NOT_FOUND


def test_production_needs_a_second_person(client):
    key, _ = _create(client, ws="ws")
    body = {
        "experimentKey": key,
        "modelName": "m",
        "remoteEntities": [{"remoteUrl": "s3://m/model.bin", "fileName": "model.bin"}],
    }
    assert client.post("/clientlib/asset/log-remote-model", json=body).status_code == 200
    reg = client.post(
        "/api/rest/v2/write/registry-model/item/create",
        json={"experimentKey": key, "experimentModelName": "m", "registryModelName": "m"},
    )
    assert reg.status_code == 200, reg.text
    item = reg.json()["registryModelItemId"]
    r = client.post(
        "/api/rest/v2/write/registry-model/item/status", json={"modelItemId": item, "status": "Production"}
    )
    body = _comet_error(r, 403, "four eyes")
    assert "Request #" in body["msg"]
    again = client.post(
        "/api/rest/v2/write/registry-model/item/status", json={"modelItemId": item, "status": "Production"}
    )
    _comet_error(again, 409, "already pending")
    details = client.get(
        "/api/rest/v2/registry-model/item/details",
        params={"workspaceName": "ws", "modelName": "m", "version": "1.0.0"},
    ).json()
    assert details["status"] == "Development"
    (req,) = client.get("/api/v1/workspaces/ws/models/m/requests", params={"state": "pending"}).json()[
        "requests"
    ]
    r = client.post(
        f"/api/v1/requests/{req['id']}/approve", json={}, headers={"X-Tallymark-User": "approver"}
    )
    assert r.status_code == 200, r.text
    details = client.get(
        "/api/rest/v2/registry-model/item/details",
        params={"workspaceName": "ws", "modelName": "m", "version": "1.0.0"},
    ).json()
    assert details["status"] == "Production"
    bad = client.post(
        "/api/rest/v2/write/registry-model/item/status", json={"modelItemId": item, "status": "QA"}
    )
    _comet_error(bad, 400, "not one of Development, Staging, Production, Archived")


def test_a_registry_name_that_is_not_a_string_is_a_400(client):
    key, _ = _create(client, ws="ws")
    body = {
        "experimentKey": key,
        "modelName": "m",
        "remoteEntities": [{"remoteUrl": "s3://m/model.bin", "fileName": "model.bin"}],
    }
    assert client.post("/clientlib/asset/log-remote-model", json=body).status_code == 200
    for name in (5, ["m"], {"m": 1}):
        r = client.post(
            "/api/rest/v2/write/registry-model/item/create",
            json={"experimentKey": key, "experimentModelName": "m", "registryModelName": name},
        )
        _comet_error(r, 400, "'registryModelName' must be a string")
    assert client.get("/api/v1/workspaces/ws/models").json()["models"] == []


GARBAGE_TARGETS = [
    "/clientlib/logger/add/run",
    "/clientlib/logger/get/run",
    "/clientlib/status-report/update",
    "/clientlib/batch/logger/experiment/metric",
    "/clientlib/batch/logger/experiment/parameter",
    "/clientlib/asset/upload",
    "/clientlib/asset/log-remote-model",
    "/clientlib/rest/v2/write/experiment/output",
    "/clientlib/rest/v2/write/experiment/system-details",
    "/api/rest/v2/write/experiment/log-other",
    "/api/rest/v2/write/artifacts/upsert",
    "/api/rest/v2/write/artifacts/state",
    "/api/rest/v2/write/artifacts/version/labels",
    "/api/rest/v2/write/registry-model/item/create",
    "/api/rest/v2/write/registry-model/item/status",
]
GARBAGE_READS = [
    "/api/rest/v2/artifacts/version",
    "/api/rest/v2/artifacts/version/files",
    "/api/rest/v2/experiment/metadata",
    "/api/rest/v2/experiment/metrics/get-all",
    "/api/rest/v2/experiment/asset/get-asset",
    "/api/rest/v2/registry-model/details",
    "/api/rest/v2/registry-model/item/details",
    "/api/rest/v2/experiments",
]


def test_garbage_is_a_4xx_never_a_500(client):
    payloads = [
        b"not json",
        b"[1, 2]",
        b'{"experimentKey": "x", "values": "no"}',
        b"{}",
        b'{"experimentKey": 5}',
    ]
    for path in GARBAGE_TARGETS:
        for payload in payloads:
            r = client.post(path, content=payload, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, payload, r.text)
            assert r.headers["content-type"] == "application/json" and "msg" in r.json()
    for path in GARBAGE_READS:
        for params in ({}, {"experimentKey": "nope", "assetId": "af-xx", "versionId": "zz"}):
            r = client.get(path, params=params)
            assert 400 <= r.status_code < 500, (path, params, r.text)
            assert r.headers["content-type"] == "application/json" and "msg" in r.json()


# ----- the pure helpers -----


def test_metric_series_counts_points_without_step_per_name():
    points = [
        {"metricName": "a", "metricValue": 1, "step": None},
        {"metricName": "b", "metricValue": True, "step": 7, "epoch": 1},
        {"metricName": "a", "metricValue": "2.5", "step": None},
        {"metricName": "a", "metricValue": "x", "step": None},
    ]
    series, refused = tr.metric_series(points, {"a": 3}, now_ms=5)
    by = {s["name"]: s for s in series}
    assert by["a"]["steps"] == [3, 4] and by["a"]["values"] == [1, 2.5] and "epochs" not in by["a"]
    assert by["b"]["values"] == [1] and by["b"]["epochs"] == [1] and by["b"]["timestamps"] == [5]
    assert refused == ["metric 'a': 'x' is not a number"]


def test_ids_round_trip_and_foreign_ids_are_refused():
    vid = tr.artifact_version_id("w s", "näme/x", "1.0.0")
    assert tr.parse_id("av", vid, 3) == ["w s", "näme/x", "1.0.0"]
    for bad in ("123", "av-!!!", tr.model_id("w", "m")):
        with pytest.raises(tr.Refused):
            tr.parse_id("av", bad, 3)


def test_value_strings_as_comet_reads_them():
    assert [tr.value_str(v) for v in (0.1, 3, True, "s", None, float("inf"), [1])] == [
        "0.1",
        "3",
        "true",
        "s",
        None,
        "Infinity",
        "[1]",
    ]


# ----- the offline-archive reader, on a hand-made archive -----


def _archive(path: Path, key: str) -> Path:
    messages = [
        {
            "type": "parameter_msg",
            "payload": {
                "message_id": 1,
                "local_timestamp": 1,
                "param": {"paramName": "a|b", "paramValue": 2, "step": None},
            },
        },
        {
            "type": "metric_msg",
            "payload": {
                "message_id": 2,
                "local_timestamp": 1_700_000_000_000,
                "metric": {"metricName": "loss", "metricValue": 0.5, "step": 4, "epoch": 1},
            },
        },
        {
            "type": "metric_msg",
            "payload": {
                "message_id": 3,
                "local_timestamp": 1_700_000_000_001,
                "metric": {"metricName": "loss", "metricValue": 0.25, "step": 5, "epoch": 1},
            },
        },
        {"type": "log_other", "payload": {"message_id": 4, "key": "Name", "value": "archived"}},
        {"type": "standard_output", "payload": {"message_id": 5, "output": "hi\n", "stderr": False}},
        {
            "type": "file_upload",
            "payload": {
                "message_id": 6,
                "file_path": "cm",
                "upload_type": "confusion-matrix",
                "additional_params": {"fileName": "confusion-matrix.json", "step": 5},
                "metadata": {},
            },
        },
        {
            "type": "file_upload",
            "payload": {
                "message_id": 7,
                "file_path": "asset",
                "upload_type": "asset",
                "additional_params": {"fileName": "notes.txt", "assetId": "f00d"},
                "metadata": {"k": "v"},
            },
        },
        {
            "type": "file_upload",
            "payload": {
                "message_id": 8,
                "file_path": "w",
                "upload_type": "model-element",
                "additional_params": {"fileName": "m/w.bin", "groupingName": "m"},
                "metadata": {},
            },
        },
        {"type": "html", "payload": {"message_id": 9, "html": "<b>"}},
        {
            "type": "register_model",
            "payload": {
                "message_id": 10,
                "model_name": "m",
                "registry_name": "m",
                "workspace": None,
                "version": None,
                "status": None,
                "tags": ["t"],
                "description": None,
            },
        },
    ]
    target = path / f"{key}.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr(
            "experiment.json",
            json.dumps(
                {
                    "offline_id": key,
                    "project_name": "p",
                    "workspace": "w",
                    "tags": ["t1"],
                    "start_time": 1,
                    "stop_time": 2,
                }
            ),
        )
        zf.writestr("messages.json", "\n".join(json.dumps(m) for m in messages) + "\n")
        zf.writestr("cm", json.dumps({"title": "CM", "labels": ["a", "b"], "matrix": [[1, 0], [0, 1]]}))
        zf.writestr("asset", b"note\n")
        zf.writestr("w", b"\x00\x01")
    return target


def test_offline_reader_imports_a_comet_archive_idempotently(tmp_path):
    from tallymark.sdk.transport import LocalTransport
    from tallymark.server.compat.comet.offline import is_comet_archive, replay_comet_archive

    key = _key()
    archive = _archive(tmp_path, key)
    assert is_comet_archive(archive) and not is_comet_archive(tmp_path)
    warnings: list[str] = []
    for _ in range(2):
        t = LocalTransport(tmp_path / "home")
        try:
            assert replay_comet_archive(archive, t, warn=warnings.append) == key
        finally:
            t.close()
    assert any("html" in w for w in warnings)
    t = LocalTransport(tmp_path / "home")
    try:
        exp = t.read("experiment", key=key)
        assert (exp["name"], exp["status"], exp["workspace"]) == ("archived", "ended", "w")
        assert t.read("tags", key=key) == ["t1"]
        assert {p["name"]: p["valueCurrent"] for p in t.read("params", key=key)} == {"a.b": 2}
        loss = t.read("metric", key=key, name="loss")
        assert loss["steps"] == [4, 5] and loss["values"] == [0.5, 0.25] and loss["epochs"] == [1, 1]
        (cm,) = t.read("items", key=key, kind="confusion_matrix")
        assert cm["data"]["matrix"] == [[1, 0], [0, 1]] and cm["step"] == 5
        (asset,) = t.read("assets", key=key)
        assert asset["fileName"] == "notes.txt" and asset["metadata"] == {"k": "v"}
        assert "hi\n" in "".join(i["data"]["text"] for i in t.read("items", key=key, kind="stdout"))
        (model,) = t.call("logged_models", key=key)
        assert [f["logicalPath"] for f in model["files"]] == ["m/w.bin"]
        versions = t.call("get_model", workspace="w", name="m")["versions"]
        assert [(v["version"], v["tags"]) for v in versions] == [("1.0.0", ["t"])]
    finally:
        t.close()


def test_uploads_get_the_asset_limit_not_the_json_limit(tmp_path):
    from fastapi.testclient import TestClient

    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    app = create_app(Settings(home=tmp_path / "srv", max_body_bytes=4096, max_asset_bytes=256 * 1024))
    with TestClient(app, base_url="http://127.0.0.1", headers=KEY_HEADERS) as c:
        key, r = _create(c)
        assert r.status_code == 200
        assert _upload(c, key, b"x" * 100_000, "big.bin").status_code == 200
        r = _upload(c, key, b"x" * 300_000, "huge.bin")
        assert r.status_code == 413
        values = [{"metricName": "m", "metricValue": 1.0, "step": i} for i in range(200)]
        r = c.post("/clientlib/batch/logger/experiment/metric", json={"experimentKey": key, "values": values})
        assert r.status_code == 413


def test_read_api_workspaces_projects_experiments(client):
    key, _ = _create(client, ws="team", project="proj")
    client.post(
        "/api/rest/v2/write/experiment/log-other", json={"experimentKey": key, "key": "Name", "value": "r1"}
    )
    get = lambda path, **q: client.get(f"/api/rest/v2/{path}", params=q).json()  # noqa: E731
    assert "team" in get("workspaces")["workspaceNames"]
    (proj,) = get("projects", workspaceName="team")["projects"]
    assert proj["projectName"] == "proj" and proj["numberOfExperiments"] == 1
    assert get("project", projectId=proj["projectId"])["projectName"] == "proj"
    (meta,) = get("experiments", workspaceName="team", projectName="proj")["experiments"]
    assert meta["experimentKey"] == key and meta["experimentName"] == "r1" and meta["running"] is True
    assert get("experiment/metadata", experimentKey=key)["workspaceName"] == "team"
    assert get("account-details")["userName"] == "anonymous"
    r = client.get("/api/rest/v2/experiment/metadata", params={"experimentKey": _key()})
    assert r.status_code == 404  # the SDK's API().get_experiment then answers None
    made = client.post(
        "/api/rest/v2/write/experiment/create", json={"workspaceName": "team", "projectName": "proj"}
    )
    assert made.status_code == 200 and len(made.json()["experimentKey"]) == 32
