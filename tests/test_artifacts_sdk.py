"""Artifacts, models and the registry through the SDK — embedded and over HTTP — plus path safety
through the SDK and raw HTTP, and tamper detection on download."""

from __future__ import annotations

import hashlib
import os

import pytest

import tallymark
from tallymark import API, Artifact
from tallymark.sdk.artifact import HashMismatch
from tallymark.sdk.transport import TallymarkError

from servers import ServerProcess

QUIET = {
    "log_code": False,
    "log_env": False,
    "log_git": False,
    "log_system_metrics": False,
    "capture_stdout": False,
}


def _workflow(tmp_path, monkeypatch):
    data = tmp_path / "creditcard.csv"
    data.write_text("Time,V1,Amount,Class\n0,1.5,10.0,0\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text('{"trees": 100}')
    (tmp_path / "model" / "params.txt").write_text("eta=0.15")
    monkeypatch.setenv("TALLYMARK_USER", "alice")
    with tallymark.Experiment(project_name="fraud", workspace="risk", name="prep", **QUIET) as prep:
        raw = Artifact("fraud-dataset", artifact_type="dataset", aliases=["raw"], metadata={"rows": 284807})
        raw.add_remote("s3://bank-data/creditcard.csv", metadata={"source": "kaggle"})
        assert prep.log_artifact(raw).version == "1.0.0"
        prep.get_artifact("fraud-dataset", "raw")
        pre = Artifact(
            "fraud-dataset", artifact_type="dataset", aliases=["preprocessed"], metadata={"scaled": True}
        )
        pre.add(data, logical_path="train/creditcard.csv")
        logged = prep.log_artifact(pre)
        assert logged.version == "2.0.0" and logged.aliases == ["preprocessed"]
    with tallymark.Experiment(project_name="fraud", workspace="risk", name="train", **QUIET) as train:
        got = train.get_artifact("fraud-dataset", "preprocessed")
        files = got.download(tmp_path / "inputs")
        assert files[0].read_text() == data.read_text()
        train.log_model("fraud-xgb", tmp_path / "model", metadata={"framework": "xgboost"})
        train.log_remote_model("fraud-xgb-remote", "s3://models/xgb/1", metadata={"format": "ubj"})
        mv = train.register_model("fraud-xgb", description="baseline", tags=["xgboost"])
        assert mv["version"] == "1.0.0" and mv["status"] == "development"
    return data, train


def _check(api, data, train, tmp_path, monkeypatch):
    model = api.get_model("risk", "fraud-xgb")
    req = model.request_status("1.0.0", "production", comment="best AUC-PR")
    with pytest.raises(TallymarkError, match="four eyes") as info:
        model.approve(req["id"])
    assert info.value.status == 403
    bob = tallymark.API(settings=api.settings.with_overrides(user="bob"))  # another person, another client
    assert bob.get_model("risk", "fraud-xgb").approve(req["id"], comment="reviewed")["decidedBy"] == "bob"
    bob.close()
    assert model.find_versions(status="production") == ["1.0.0"]
    history = model.get_details("1.0.0")["history"]
    assert [(h["to"], h["actor"]) for h in history] == [("development", "alice"), ("production", "bob")]
    inputs = {n["version"]: n for n in model.get_training_inputs("1.0.0")}
    assert set(inputs) == {"1.0.0", "2.0.0"}
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    assert inputs["2.0.0"]["files"][0]["sha256"] == sha
    assert inputs["1.0.0"]["files"][0]["uri"] == "s3://bank-data/creditcard.csv"
    out = model.download("1.0.0", tmp_path / "dl-model")
    assert sorted(p.name for p in out) == ["model.json", "params.txt"]
    lineage = api.get_experiment_by_key(train.get_key()).get_lineage()
    assert {e["relation"] for e in lineage["edges"]} >= {"consumed", "registered_from"}
    versions = api.get_artifact_versions("risk", "fraud-dataset")
    assert [v.version for v in versions] == ["1.0.0", "2.0.0"]
    assert api.get_artifact("risk", "fraud-dataset", "raw").metadata == {"rows": 284807}
    return sha


def test_embedded_workflow_and_tampering(home, tmp_path, monkeypatch):
    data, train = _workflow(tmp_path, monkeypatch)
    api = API()
    sha = _check(api, data, train, tmp_path, monkeypatch)
    # Tamper with the stored blob: the download refuses it and writes nothing.
    blob = home / "blobs" / sha[:2] / sha[2:4] / sha
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(HashMismatch, match="tampered"):
        api.get_artifact("risk", "fraud-dataset", "preprocessed").download(tmp_path / "again")
    assert not (tmp_path / "again" / "train" / "creditcard.csv").exists()


@pytest.mark.slow
def test_http_workflow(tmp_path, monkeypatch):
    with ServerProcess(tmp_path / "srv") as srv:
        monkeypatch.setenv("TALLYMARK_URL", srv.url)
        monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "client"))
        data, train = _workflow(tmp_path, monkeypatch)
        _check(API(), data, train, tmp_path, monkeypatch)


def test_unsafe_paths_through_the_sdk(home, tmp_path):
    _traversal_through_the_sdk(tmp_path)


def _traversal_through_the_sdk(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "f.txt").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    (folder / "link").symlink_to(outside)
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        for bad in ("../f.txt", "/etc/passwd", "%2e%2e/f", "a\\..\\b", "x/\x00"):
            art = Artifact("d").add(tmp_path / "f.txt", logical_path=bad)
            with pytest.raises(TallymarkError, match="unsafe"):
                exp.log_artifact(art)
        with pytest.raises(ValueError, match="outside"):
            Artifact("d").add(folder)


def test_unsafe_paths_through_raw_http(client):
    import uuid

    key = uuid.uuid4().hex
    client.post("/api/v1/experiments", json={"key": key, "workspace": "w", "project": "p"})
    data = b"bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert (
        client.put(
            f"/api/v1/blobs/{sha}", content=data, headers={"content-type": "application/octet-stream"}
        ).status_code
        == 201
    )
    assert (
        client.put(
            f"/api/v1/blobs/{'0' * 64}", content=data, headers={"content-type": "application/octet-stream"}
        ).status_code
        == 422
    )  # hash mismatch
    assert client.post("/api/v1/blobs/missing", json={"sha256": [sha, "1" * 64]}).json()["missing"] == [
        "1" * 64
    ]
    for bad in ("../x", "..%2fx", "%2e%2e/x", "%252e%252e/x", "a\\b", "/abs", "a/./b", "a//b"):
        r = client.post(
            "/api/v1/workspaces/w/artifacts/d/versions",
            json={"artifact_type": "dataset", "files": [{"logical_path": bad, "sha256": sha}]},
        )
        assert r.status_code == 422 and "unsafe" in r.json()["error"]["message"], (bad, r.text)
    r = client.post(
        "/api/v1/workspaces/w/artifacts/d/versions",
        json={"artifact_type": "dataset", "files": [{"logical_path": "ok/x.csv", "sha256": sha}]},
    )
    assert r.status_code == 201
    # names in URLs cannot escape either
    assert client.get("/api/v1/workspaces/w/artifacts/..%2F..%2Fetc/versions").status_code in (404, 422)
    assert client.get(f"/api/v1/blobs/{'../' * 3}etc/passwd").status_code in (404, 422)


@pytest.mark.slow
@pytest.mark.s3
def test_workflow_traversal_and_tampering_on_s3(tmp_path, monkeypatch, s3_server):
    """The same artifact workflow, path safety and tamper detection with blobs in a real S3 server."""
    bucket = s3_server.create_bucket()
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TALLYMARK_BLOBS", f"s3://{bucket}/tallymark")
    monkeypatch.setenv("TALLYMARK_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.delenv("TALLYMARK_URL", raising=False)
    data, train = _workflow(tmp_path, monkeypatch)
    api = API()
    sha = _check(api, data, train, tmp_path, monkeypatch)
    assert not (tmp_path / "home" / "blobs").exists(), "blobs went to S3, not the home folder"
    client = s3_server.client()
    key = f"tallymark/{sha[:2]}/{sha[2:4]}/{sha}"
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data.read_bytes())
    client.put_object(Bucket=bucket, Key=key, Body=b"tampered")
    with pytest.raises(HashMismatch):
        api.get_artifact("risk", "fraud-dataset", "preprocessed").download(tmp_path / "again")
    _traversal_through_the_sdk(tmp_path / "t")
