"""Bad input gets a clear error before anything runs (or a clear Failed status), never a hang and
never half a write: a missing script, a duplicate channel, unreadable inputs (local, s3,
artifact), a malformed spec over REST."""

from __future__ import annotations

import pytest

from tallymark.jobs import ProcessingJob, TrainingJob
from tallymark.jobs.spec import Channel
from tallymark.sdk.transport import LocalTransport, TallymarkError

from conftest import write


def _jobs(home):
    t = LocalTransport(home)
    try:
        return t.call("list_jobs", workspace="risk") if (home / "tallymark.db").exists() else []
    finally:
        t.close()


def test_a_missing_script_is_refused_before_any_job_exists(jobs_home, tmp_path):
    with pytest.raises(FileNotFoundError, match="the job's script .*nope.py.* does not exist"):
        TrainingJob(entry_point=str(tmp_path / "nope.py"), workspace="risk").fit()
    with pytest.raises(FileNotFoundError):
        ProcessingJob(str(tmp_path / "nope.py"), workspace="risk").run()
    assert _jobs(jobs_home) == []


def test_a_channel_given_twice_is_a_4xx(jobs_home, tmp_path):
    script = write(tmp_path / "s.py", "print(1)\n")
    job = TrainingJob(entry_point=str(script), workspace="risk")
    with pytest.raises(TallymarkError, match="channel 'train' is given twice") as exc:
        job.fit([Channel("train", str(tmp_path)), Channel("train", str(tmp_path))])
    assert exc.value.status == 422
    with pytest.raises(TallymarkError, match="channel name 'a/b'"):
        TrainingJob(entry_point=str(script), workspace="risk").fit({"a/b": str(tmp_path)})
    assert _jobs(jobs_home) == []


def test_unreadable_inputs_fail_the_job_before_its_script_starts(jobs_home, tmp_path, s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    bucket = s3_server.create_bucket()
    script = write(tmp_path / "s.py", "print('the script ran')\n")
    cases = {
        str(tmp_path / "missing"): f"input 'train': no file or folder at {tmp_path / 'missing'}",
        f"s3://{bucket}/no/such/key": f"input 'train': no object at s3://{bucket}/no/such/key",
        "s3://no-such-bucket-tm/x": "input 'train': cannot read s3://no-such-bucket-tm/x: NoSuchBucket",
        "artifact://risk/no-such-dataset:raw": (
            "input 'train': artifact://risk/no-such-dataset:raw: no artifact"
        ),
    }
    for uri, reason in cases.items():
        job = TrainingJob(entry_point=str(script), workspace="risk", max_run=60).fit({"train": uri})
        assert job.status == "Failed", uri
        assert job.failure_reason.startswith(reason), (uri, job.failure_reason)
        assert job.exit_code is None and job.logs() == ""  # the script never started


def test_s3_channels_and_an_s3_output_path(jobs_home, tmp_path, s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="data/train/a.csv", Body=b"1,2\n")
    s3.put_object(Bucket=bucket, Key="data/train/sub/b.csv", Body=b"3,4\n")
    script = write(
        tmp_path / "t.py",
        "import os\nd = os.environ['SM_CHANNEL_TRAIN']\n"
        "found = sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)\n"
        "print(found)\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('ok')\n",
    )
    job = TrainingJob(
        entry_point=str(script), workspace="risk", output_path=f"s3://{bucket}/models", max_run=60
    ).fit({"train": f"s3://{bucket}/data/train"})
    assert job.status == "Completed", job.failure_reason
    assert job.logs() == "['a.csv', 'sub/b.csv']\n"
    assert job.model_data == f"s3://{bucket}/models/{job.job_name}/output/model.tar.gz"
    head = s3.head_object(Bucket=bucket, Key=f"models/{job.job_name}/output/model.tar.gz")
    assert head["ContentLength"] > 0


def test_rest_refuses_a_bad_job_spec_with_a_clear_4xx(client):
    base = "/api/v1/workspaces/risk/jobs"
    good = {
        "name": "prep-1",
        "kind": "processing",
        "workspace": "risk",
        "script": "/tmp/p.py",
        "inputs": [{"name": "input", "uri": "/data", "destination": "/opt/ml/processing/input"}],
    }
    bad = {
        "no spec": ({}, 422, 'the body is {"spec"'),
        "unknown field": ({"spec": {**good, "colour": "red"}}, 422, "unknown or missing fields"),
        "bad name": ({"spec": {**good, "name": "no spaces"}}, 422, "job name 'no spaces'"),
        "no script": ({"spec": {**good, "script": None}}, 422, "either a script or a built-in"),
        "max_run": ({"spec": {**good, "max_run": 0}}, 422, "max_run 0"),
        "other workspace": ({"spec": {**good, "workspace": "other"}}, 422, "names workspace 'other'"),
        "escape": (
            {"spec": {**good, "inputs": [{"name": "input", "uri": "/d", "destination": "/opt/ml/../etc"}]}},
            422,
            "may not contain '..'",
        ),
        "scheme": (
            {"spec": {**good, "inputs": [{"name": "input", "uri": "ftp://x/y", "destination": "/opt/ml/p"}]}},
            422,
            "a local path, s3://BUCKET/KEY or artifact://",
        ),
        "hyperparameter": ({"spec": {**good, "hyperparameters": {"a": 1}}}, 422, "values are strings"),
        "hyperparameters": ({"spec": {**good, "hyperparameters": [1]}}, 422, "must be an object"),
        "inputs": ({"spec": {**good, "inputs": "abc"}}, 422, "'inputs' must be a list"),
        "retries": ({"spec": {**good, "retries": 11}}, 422, "retries 11: 0 to 10"),
    }
    for what, (body, status, message) in bad.items():
        r = client.post(base, json=body)
        assert r.status_code == status, (what, r.text)
        err = r.json()["error"]
        assert message in err["message"], (what, err)
        assert set(err) >= {"code", "message", "detail"}
    assert client.get(base).json()["jobs"] == []  # nothing half written
    assert client.post(base, json={"spec": good}).status_code == 201
    r = client.post(base, json={"spec": good})
    assert r.status_code == 409 and "exists already" in r.json()["error"]["message"]
    assert client.get(f"{base}/nope").status_code == 404
    r = client.post(f"{base}/prep-1/status", json={"status": "Exploded"})
    assert r.status_code == 422 and "status 'Exploded'" in r.json()["error"]["message"]
    r = client.post(f"{base}/prep-1/logs", json={"seq": 0, "data_b64": "aGVsbG8K"})
    assert r.status_code == 200
    r = client.get(f"{base}/prep-1/logs")
    assert r.status_code == 200 and r.json()["data_b64"] == "aGVsbG8K"
    r = client.post(f"{base}/prep-1/links", json={"relation": "consumed", "ref": "experiment:abc"})
    assert r.status_code == 422
    assert client.post(f"{base}/prep-1/stop").json()["stop_requested_at"] is not None
    r = client.post(f"{base}/prep-1/status", json={"status": "Stopped"})
    assert r.status_code == 200 and r.json()["status"] == "Stopped"
    r = client.post(f"{base}/prep-1/status", json={"status": "Completed"})
    assert r.status_code == 409 and "has ended (Stopped)" in r.json()["error"]["message"]
