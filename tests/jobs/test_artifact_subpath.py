"""``artifact://WS/NAME:VERSION/SUBPATH`` inputs: a job gets exactly the files at or under the
sub-path (sha256-verified, placed relative to it, as an S3 prefix), the whole version is what is
consumed in lineage; a sub-path that matches nothing or tries to leave the version fails clearly
before the script runs; an output refuses a sub-path (an output is a whole new version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tallymark.jobs import ProcessingJob, TrainingJob
from tallymark.jobs.contract import JobOutputError
from tallymark.jobs.uris import ArtifactURI, parse_artifact, publish
from tallymark.sdk.transport import TallymarkError

from conftest import write

FILES = {
    "train/a.csv": "1,2\n",
    "train/sub/b.csv": "3,4\n",
    "trainish/x.csv": "not train\n",  # shares the prefix "train" but is not under train/
    "validation/v.csv": "5,6\n",
    "summary.json": '{"rows": 3}\n',
}

LIST = """
import json, os
seen = {}
for ch in json.loads(os.environ["SM_CHANNELS"]):
    d = os.environ["SM_CHANNEL_" + ch.upper()]
    seen[ch] = sorted(
        (os.path.relpath(os.path.join(r, f), d), open(os.path.join(r, f)).read())
        for r, _, fs in os.walk(d) for f in fs
    )
print(json.dumps(seen, sort_keys=True))
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("ok")
"""


def _log_dataset(tmp_path: Path, files: dict[str, str], alias: str) -> str:
    from tallymark import Artifact, Experiment

    art = Artifact("ds", artifact_type="dataset", aliases=[alias])
    for logical, text in files.items():
        art.add(write(tmp_path / "src" / alias / logical, text), logical)
    with Experiment(
        project_name="prep",
        workspace="risk",
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    ) as exp:
        return str(exp.log_artifact(art).version)


def _jobs() -> list[dict]:
    from tallymark.sdk.transport import default_transport

    return default_transport().call("list_jobs", workspace="risk")


def test_parse_artifact_shape_and_refusals() -> None:
    assert parse_artifact("artifact://risk/ds") == ArtifactURI("risk", "ds", None, None)
    assert parse_artifact("artifact://risk/ds:1.0.0/train/") == ("risk", "ds", "1.0.0", "train")
    assert parse_artifact("artifact://risk/ds:raw/a/b.csv").subpath == "a/b.csv"
    assert parse_artifact("artifact://risk/ds/train").version is None
    for uri, message in {
        "artifact://risk/ds:1/../x": "may not contain '.' or '..'",
        "artifact://risk/ds:1/./x": "may not contain '.' or '..'",
        "artifact://risk/ds:1//etc/passwd": "must be relative to the version, not absolute",
        "artifact://risk/ds:1/a//b": "has an empty segment",
        "artifact://risk/ds:1/": "has an empty segment",
        "artifact://risk/ds:1/a\\b": "may not contain a backslash",
        "artifact://risk/:1/a": "write artifact://WORKSPACE/NAME",
    }.items():
        with pytest.raises(ValueError, match=message):
            parse_artifact(uri)


def test_a_job_reads_exactly_the_files_under_its_sub_paths(jobs_home: Path, tmp_path: Path) -> None:
    import json

    import tallymark
    from tallymark.integration.jobs import log_training_job

    version = _log_dataset(tmp_path, FILES, "prep")
    script = write(tmp_path / "list.py", LIST)
    base = "artifact://risk/ds:prep"
    job = TrainingJob(entry_point=str(script), workspace="risk", max_run=60).fit(
        {
            "train": f"{base}/train",
            "validation": f"artifact://risk/ds:{version}/validation/",
            "summary": f"{base}/summary.json",  # a single file lands under its own name
        }
    )
    assert job.status == "Completed", job.failure_reason
    assert json.loads(job.logs()) == {
        "summary": [["summary.json", FILES["summary.json"]]],
        "train": [["a.csv", FILES["train/a.csv"]], ["sub/b.csv", FILES["train/sub/b.csv"]]],
        "validation": [["v.csv", FILES["validation/v.csv"]]],
    }
    ref = f"artifact:risk/ds:{version}"
    consumed = [link["ref"] for link in job.refresh()["links"] if link["relation"] == "consumed"]
    assert consumed == [ref]  # three channels, one version read

    # The alias moves on; the experiment still records the version the job read.
    newer = _log_dataset(tmp_path, {"train/a.csv": "9,9\n"}, "prep")
    assert newer != version
    exp = log_training_job(job)
    edges = tallymark.API().get_experiment_by_key(exp.get_key()).get_lineage()["edges"]
    assert {"src": ref, "dst": f"experiment:{exp.get_key()}", "relation": "consumed"} in edges
    assert not [e for e in edges if e["src"] == f"artifact:risk/ds:{newer}"]


def test_a_missing_or_escaping_sub_path_fails_before_the_script_runs(jobs_home: Path, tmp_path: Path) -> None:
    version = _log_dataset(tmp_path, FILES, "prep")
    script = write(tmp_path / "s.py", "print('the script ran')\n")
    job = TrainingJob(entry_point=str(script), workspace="risk", max_run=60).fit(
        {"train": f"artifact://risk/ds:{version}/tran"}
    )
    assert job.status == "Failed"
    assert job.failure_reason == (
        f"input 'train': artifact://risk/ds:{version}/tran: no file at or under 'tran' in "
        f"risk/ds:{version} (it holds summary.json, train/, trainish/, validation/)"
    )
    assert job.exit_code is None and job.logs() == ""  # the script never started

    for sub, message in {
        "../other": "may not contain '.' or '..' segments",
        "train/../../x": "may not contain '.' or '..' segments",
        "/etc": "must be relative to the version",
        "a\\b": "may not contain a backslash",
    }.items():
        uri = f"artifact://risk/ds:{version}/{sub}"
        with pytest.raises(TallymarkError, match=message) as exc:
            TrainingJob(entry_point=str(script), workspace="risk").fit({"train": uri})
        assert exc.value.status == 422 and "channel 'train'" in exc.value.message
    names = [j["name"] for j in _jobs()]
    assert names == [job.job_name]  # the refused ones never became jobs


def test_an_output_with_a_sub_path_is_refused(jobs_home: Path, tmp_path: Path) -> None:
    script = write(tmp_path / "p.py", "print('the script ran')\n")
    with pytest.raises(TallymarkError, match="takes no sub-path") as exc:
        ProcessingJob(str(script), workspace="risk").run(outputs={"output": "artifact://risk/ds:prep/train"})
    assert exc.value.status == 422 and "output 'output'" in exc.value.message
    assert _jobs() == []
    # The publishing step refuses it too, for a spec that reached it some other way.
    write(tmp_path / "out" / "f.csv", "1\n")
    with pytest.raises(JobOutputError, match="an output is a whole new version"):
        publish(tmp_path / "out", "artifact://risk/ds/train", what="output 'o'", job="j")
