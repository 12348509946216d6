"""Processing jobs: a script that hard-codes /opt/ml/processing paths (like the reference
notebook's preprocess.py), two at once that never see each other's files; artifact inputs and
outputs recorded in lineage with their hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tallymark.jobs import ProcessingJob
from tallymark.jobs.spec import Channel, OutputSpec

from conftest import write

PREPROCESS = """
import os, time
INPUT, OUTPUT = "/opt/ml/processing/input", "/opt/ml/processing/output"
names = sorted(os.listdir(INPUT))
time.sleep(1.0)  # both jobs are running now
rows = []
for n in names:
    rows += open(os.path.join(INPUT, n)).read().split()
os.makedirs(os.path.join(OUTPUT, "train"), exist_ok=True)
with open(os.path.join(OUTPUT, "train", "train.csv"), "w") as f:
    f.write("\\n".join(r.upper() for r in rows))
print("seen", names, sorted(os.listdir(OUTPUT)), sorted(os.listdir("/opt/ml/processing")))
"""


def test_two_jobs_with_hard_coded_paths_never_see_each_others_files(jobs_home, tmp_path):
    script = write(tmp_path / "preprocess.py", PREPROCESS)
    write(tmp_path / "a" / "a.csv", "alpha\nbeta")
    write(tmp_path / "b" / "b.csv", "gamma")
    jobs = []
    for x in ("a", "b"):
        job = ProcessingJob(str(script), workspace="risk", max_run=60)
        job.run(
            inputs=[Channel("input", str(tmp_path / x), destination="/opt/ml/processing/input")],
            outputs=[OutputSpec("train", "/opt/ml/processing/output", str(tmp_path / f"out-{x}"))],
            wait=False,
        )
        jobs.append(job)
    assert jobs[0].status == "InProgress"  # wait=False returned while it runs
    assert [j.wait() for j in jobs] == ["Completed", "Completed"], [j.failure_reason for j in jobs]
    assert (tmp_path / "out-a" / "train" / "train.csv").read_text() == "ALPHA\nBETA"
    assert (tmp_path / "out-b" / "train" / "train.csv").read_text() == "GAMMA"
    assert "seen ['a.csv'] ['train'] ['input', 'output']" in jobs[0].logs()
    assert "seen ['b.csv'] ['train'] ['input', 'output']" in jobs[1].logs()
    assert not Path("/opt/ml").exists()
    d = jobs[0].describe()
    assert d["ProcessingJobStatus"] == "Completed" and d["ProcessingInputs"][0]["InputName"] == "input"


def test_artifact_input_and_output_are_lineage_with_hashes(jobs_home, tmp_path):
    from tallymark import Artifact, Experiment
    from tallymark.sdk.api import API

    write(tmp_path / "raw" / "raw.csv", "one two")
    with Experiment(
        project_name="fraud",
        workspace="risk",
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    ) as exp:
        exp.log_artifact(Artifact("fraud-dataset", aliases=["raw"]).add(tmp_path / "raw" / "raw.csv"))
    script = write(tmp_path / "preprocess.py", PREPROCESS)
    job = ProcessingJob(str(script), workspace="risk", max_run=60).run(
        inputs={"input": "artifact://risk/fraud-dataset:raw"},
        outputs={"output": "artifact://risk/fraud-prepared:preprocessed"},
    )
    assert job.status == "Completed", job.failure_reason
    api = API()
    out = api.get_artifact("risk", "fraud-prepared", "preprocessed")
    assert [f["logicalPath"] for f in out.assets] == ["train/train.csv"]
    assert out.metadata == {"job": job.job_name}
    graph = api.get_lineage("artifact:risk/fraud-prepared:preprocessed", direction="upstream")
    refs = {n["ref"]: n for n in graph["nodes"]}
    assert f"job:{job.job_name}" in refs and refs[f"job:{job.job_name}"]["status"] == "Completed"
    assert {
        "src": "artifact:risk/fraud-dataset:1.0.0",
        "dst": f"job:{job.job_name}",
        "relation": "consumed",
    } in graph["edges"]
    assert {
        "src": f"job:{job.job_name}",
        "dst": "artifact:risk/fraud-prepared:1.0.0",
        "relation": "produced",
    } in graph["edges"]
    raw = refs["artifact:risk/fraud-dataset:1.0.0"]
    assert raw["files"][0]["sha256"] and raw["files"][0]["logicalPath"] == "raw.csv"
    links = job.describe()["Links"]
    assert {(x["relation"], x["ref"]) for x in links} == {
        ("consumed", "artifact:risk/fraud-dataset:1.0.0"),
        ("produced", "artifact:risk/fraud-prepared:1.0.0"),
    }
    assert json.loads(json.dumps(job.describe(), default=str))  # plain data


def test_a_processing_path_outside_opt_ml_is_bound_there_in_the_namespace(jobs_home, tmp_path):
    place = tmp_path / "elsewhere"
    (place / "in").mkdir(parents=True)
    (place / "in" / "host-file.txt").write_text("the machine's own file, hidden from the job")
    script = write(
        tmp_path / "p.py",
        f"import os\nbase = {str(place)!r}\nprint(sorted(os.listdir(base + '/in')))\n"
        "open(base + '/out/result.txt', 'w').write('done')\n",
    )
    write(tmp_path / "data" / "d.csv", "1")
    job = ProcessingJob(str(script), workspace="risk", max_run=60).run(
        inputs=[Channel("data", str(tmp_path / "data"), destination=str(place / "in"))],
        outputs=[OutputSpec("result", str(place / "out"), str(tmp_path / "result"))],
    )
    assert job.status == "Completed", job.failure_reason
    assert job.logs() == "['d.csv']\n"  # the job saw its input there, not the machine's file
    assert (tmp_path / "result" / "result.txt").read_text() == "done"
    assert sorted(os.listdir(place / "in")) == ["host-file.txt"]  # the machine's folder untouched
