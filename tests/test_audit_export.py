"""``tallymark audit export``: the auditor's bundle of the experiment behind the production model.

The store is the fraud demo at a small size (real SDK, real embedded store), plus what an old
store may hold: an environment and a git remote recorded before capture-time redaction, and a
secret-named parameter, written with SQL as such a store would have them. The bundle is checked the
way an auditor would: unpacked, its manifest recomputed, its entries rehashed with the documented
encoding (not with tallymark's code), and its checkpoint checked with docs/security.md's script.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tallymark.cli import app
from tallymark.service import audit, lineage, registry
from tallymark.service.caller import local_admin
from tallymark.store.schema import audit_log, experiments, items, params

DOCS = Path(__file__).resolve().parent.parent / "docs"
API_KEY = "tm_" + "Q7x" * 13 + "z"  # the shape of a tallymark key (tm_ + 40)
PASSWORD = "hunter2-very-secret"
FIELDS = ["seq", "time", "actor", "action", "object_kind", "object_ref", "workspace", "request_id"]
FIELDS += ["payload_sha256", "prev_hash"]


ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


def _ns(v) -> bytes:
    if v is None:
        return b"~"
    b = str(v).encode()
    return b"%d:%s," % (len(b), b)


def _rehash(entry: dict) -> str:
    """docs/security.md's encoding, written out again here: not tallymark's own code."""
    return hashlib.sha256(_ns("tallymark-audit-v1") + b"".join(_ns(entry[f]) for f in FIELDS)).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The fraud demo in an embedded home, an old store's unredacted records, a checkpoint."""
    from rich.console import Console

    from tallymark.demo.workflow import run_demo
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    home = tmp_path_factory.mktemp("export") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALLYMARK_HOME", str(home))
        mp.setenv("TALLYMARK_USER", "alice")
        for var in ("TALLYMARK_URL", "TALLYMARK_API_KEY", "TALLYMARK_AUDIT_KEY"):
            mp.delenv(var, raising=False)
        result = run_demo(rows=5_000, console=Console(file=io.StringIO(), width=200))
    store = open_store(Settings.from_env(home=home))
    key = result.best.key
    with store.db.write() as conn:
        eid = conn.execute(select(experiments.c.id).where(experiments.c.key == key)).scalar_one()
        old_env = {
            "argv": ["train.py", f"--api-key={API_KEY}", "--password", PASSWORD],
            "env_vars": {"DB_PASSWORD": PASSWORD, "HOME": "/home/alice", "NOTE": f"key {API_KEY}"},
        }
        old_git = {"commit": "0" * 40, "remote_url": f"https://alice:{PASSWORD}@git.example.com/r.git"}
        for kind, data in (("environment", old_env), ("git", old_git)):
            conn.execute(
                items.insert().values(
                    experiment_id=eid, kind=kind, name=kind, data_json=json.dumps(data), created_at=1
                )
            )
        conn.execute(
            params.insert().values(
                experiment_id=eid, name="db_password", value_json=json.dumps(PASSWORD), updated_at=1
            )
        )
        # An entry on an artifact version of the lineage, and one on an unrelated object.
        audit.append(conn, "alice", "artifact_version.log", ("artifact_version", "demo/fraud-dataset:1.0.0"),
                     "demo", {"x": 1})  # fmt: skip
        audit.append(
            conn, "bob", "artifact_version.log", ("artifact_version", "demo/other:1.0.0"), "demo", {}
        )
    audit.checkpoint(store)
    yield {"home": home, "store": store, "key": key, "result": result}
    store.close()


def _export(demo, out: Path, *extra: str):
    return CliRunner().invoke(
        app, ["audit", "export", demo["key"], "--out", str(out), "--home", str(demo["home"]), *extra]
    )


@pytest.fixture(scope="module")
def bundle(demo, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("bundle") / "audit.zip"
    res = _export(demo, out)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "manifest SHA-256" in res.output
    with zipfile.ZipFile(out) as z:
        return {name: z.read(name) for name in z.namelist()}


def _json(bundle, path):
    return json.loads(bundle[path])


def test_the_manifest_hashes_every_file(bundle):
    listed = {}
    for line in bundle["manifest.sha256"].decode().splitlines():
        digest, path = line.split("  ", 1)
        listed[path] = digest
    assert set(listed) == set(bundle) - {"manifest.sha256"}
    for path, digest in listed.items():
        assert hashlib.sha256(bundle[path]).hexdigest() == digest, path
    assert {"README.txt", "experiment/experiment.json", "experiment/metrics.csv", "lineage.json"} <= set(
        bundle
    )
    assert {"audit/entries.jsonl", "audit/checkpoint.txt", "audit/verifier-key.txt"} <= set(bundle)


def test_sha256sum_accepts_the_unpacked_bundle(demo, tmp_path):
    folder = tmp_path / "unpacked"
    folder.mkdir()
    assert _export(demo, folder).exit_code == 0
    res = subprocess.run(["sha256sum", "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": OK") == len(list(p for p in folder.rglob("*") if p.is_file())) - 1


def test_the_experiment_and_its_metrics(demo, bundle):
    run = demo["result"].best
    exp = _json(bundle, "experiment/experiment.json")
    assert (exp["key"], exp["name"], exp["status"], exp["user"]) == (run.key, run.name, "ended", "alice")
    assert exp["created_at"] and exp["ended_at"] and "demo" in exp["tags"]
    summary = {m["name"]: m for m in _json(bundle, "experiment/metrics-summary.json")}
    assert summary["test_auc_pr"]["valueCurrent"] == pytest.approx(run.metrics["test_auc_pr"])
    rows = bundle["experiment/metrics.csv"].decode().splitlines()
    assert rows[0] == "name,step,epoch,timestamp_ms,value"
    train_auc = [r for r in rows[1:] if r.startswith("train_auc,")]
    assert len(train_auc) == summary["train_auc"]["count"] == run.num_rounds
    params = {p["name"]: p["valueCurrent"] for p in _json(bundle, "experiment/params.json")}
    assert str(params["learning_rate"]) == str(run.params["learning_rate"])
    # the built-in XGBoost trainer's modules: log_training_job logs the code the job ran
    code = [c["name"] for c in _json(bundle, "experiment/code.json")]
    assert "xgboost_train.py" in code and "hyperparams.py" in code
    assert _json(bundle, "experiment/packages.json")["packages"]


def test_every_artifact_version_of_the_lineage_with_the_stores_hashes(demo, bundle):
    store, key = demo["store"], demo["key"]
    graph = lineage.get_lineage(store, ADMIN, f"experiment:{key}", "both", 50)
    expected = {
        f"{n['name']}:{n['version']}": sorted((f["logicalPath"], f["sha256"], f["uri"]) for f in n["files"])
        for n in graph["nodes"]
        if n["kind"] == "artifact_version"
    }
    got = {
        f"{a['name']}:{a['version']}": sorted((f["logicalPath"], f["sha256"], f["uri"]) for f in a["files"])
        for a in _json(bundle, "artifacts.json")
    }
    assert got == expected
    # raw (consumed by the preparation run, upstream two hops) and preprocessed (trained on)
    assert set(got) == {"fraud-dataset:1.0.0", "fraud-dataset:2.0.0"}
    assert all(sha for files in got.values() for _, sha, uri in files if uri is None)
    production = demo["result"].production
    inputs = registry.training_inputs(store, ADMIN, "demo", "fraud-xgb", production)
    assert {f"{i['name']}:{i['version']}" for i in inputs} <= set(got)
    refs = {n["ref"] for n in _json(bundle, "lineage.json")["nodes"]}
    assert f"model:demo/fraud-xgb:{production}" in refs and f"experiment:{demo['result'].prep_key}" in refs


def test_the_production_model_its_approval_and_transitions(demo, bundle):
    production = demo["result"].production
    models = _json(bundle, "models.json")
    # log_training_job logs the model under the job's base name; the demo registers it as fraud-xgb
    assert [m["name"] for m in models["logged"]] == [demo["result"].best.name]
    assert all(f["sha256"] for f in models["logged"][0]["files"])
    (v,) = models["registry"]
    assert (v["workspace"], v["name"], v["version"], v["status"]) == (
        "demo",
        "fraud-xgb",
        production,
        "production",
    )
    (req,) = v["requests"]
    assert (req["toStatus"], req["state"], req["requestedBy"], req["decidedBy"]) == (
        "production",
        "approved",
        "alice",
        "risk-officer",
    )
    assert req["requestedAt"] <= req["decidedAt"] and req["decisionComment"]
    assert [(t["from"], t["to"], t["actor"]) for t in v["transitions"]][-1] == (
        "development",
        "production",
        "risk-officer",
    )
    stored = registry.list_requests(demo["store"], ADMIN, "demo", "fraud-xgb")
    assert req["requestId"] in {r["id"] for r in stored if r["version"] == production}


def test_the_audit_entries_verify_against_the_chain_and_the_checkpoint(demo, bundle):
    store = demo["store"]
    entries = [json.loads(line) for line in bundle["audit/entries.jsonl"].decode().splitlines()]
    production = demo["result"].production
    actions = [
        (e["actor"], e["action"]) for e in entries if e["object_ref"] == f"demo/fraud-xgb:{production}"
    ]
    assert actions == [
        ("alice", "model_version.register"),
        ("alice", "model_version.request"),
        ("risk-officer", "model_version.approve"),
        ("risk-officer", "model_version.status"),
    ]
    refs = {e["object_ref"] for e in entries}
    assert "demo/fraud-dataset:1.0.0" in refs and "demo/other:1.0.0" not in refs
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    for e in entries:
        assert _rehash(e) == e["hash"], e["seq"]
    with store.db.read() as conn:
        chain = [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]
    for e in entries:
        assert chain[e["seq"] - 1] == e  # the same entry, field for field
    # docs/security.md's independent verifier: the chain, then the bundle's checkpoint and key
    doc = (DOCS / "security.md").read_text()
    code = re.search(r"<!-- verify-independently -->\n```python\n(.*?)```", doc, re.S).group(1)
    ns: dict = {}
    exec(compile(code, "docs/security.md", "exec"), ns)  # noqa: S102 - our own documentation
    hashes = ns["verify_chain"](json.loads(json.dumps(chain)))
    note = bundle["audit/checkpoint.txt"].decode()
    vkey = bundle["audit/verifier-key.txt"].decode().strip()
    ns["check_checkpoint"](note, vkey, hashes)
    assert vkey == audit.signer(store).verifier.encode()
    assert int(note.split("\n")[1]) >= max(e["seq"] for e in entries)  # every entry is covered
    facts = _json(bundle, "bundle.json")
    assert facts["auditEntries"] == facts["auditEntriesCoveredByCheckpoint"] == len(entries)


def test_the_readme_says_what_each_file_is_and_its_check_runs(bundle, tmp_path):
    readme = bundle["README.txt"].decode()
    for path in bundle:
        if path not in ("README.txt",):
            assert path in readme, path
    snippet = textwrap.dedent(readme.split("In Python:\n", 1)[1].split("\n3.", 1)[0])
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "entries.jsonl").write_bytes(bundle["audit/entries.jsonl"])
    res = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    tampered = bundle["audit/entries.jsonl"].replace(b'"risk-officer"', b'"mallory"', 1)
    (tmp_path / "audit" / "entries.jsonl").write_bytes(tampered)
    res = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode != 0 and "AssertionError" in res.stderr


def test_two_exports_are_byte_identical_and_the_folder_holds_the_same_files(demo, bundle, tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    assert _export(demo, a).exit_code == 0 and _export(demo, b).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip"]  # nothing left aside
    with zipfile.ZipFile(a) as z:
        infos = z.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _export(demo, folder).exit_code == 0
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == bundle


def test_nothing_secret_is_in_the_bundle(demo, bundle):
    blob = b"\n".join(bundle.values()).decode()
    assert API_KEY not in blob and PASSWORD not in blob
    assert not re.search(r"(?<![A-Za-z0-9])tm_[A-Za-z0-9]{40}", blob)
    assert not re.search(r"--api-key=(?!\*\*\*)", blob)
    assert "PRIVATE+KEY" not in blob
    env = _json(bundle, "experiment/environment.json")["environment"]
    assert env["argv"] == ["train.py", "--api-key=***", "--password", "***"]
    assert env["env_vars"]["DB_PASSWORD"] == "***" and env["env_vars"]["HOME"] == "/home/alice"
    assert _json(bundle, "experiment/git.json")["remote_url"] == "https://git.example.com/r.git"
    params = {p["name"]: p["valueCurrent"] for p in _json(bundle, "experiment/params.json")}
    assert params["db_password"] == "***"


def test_a_key_that_does_not_exist_is_a_clear_error(demo, tmp_path):
    out = tmp_path / "none.zip"
    res = _export({**demo, "key": "0" * 32}, out)
    assert res.exit_code == 1
    assert "no experiment with key '00000000000000000000000000000000'" in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_outputs_and_keys_are_clear_errors(demo, tmp_path):
    res = _export(demo, tmp_path / "missing" / "x.zip")
    assert res.exit_code == 1 and "no directory" in res.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    res = _export(demo, full)
    assert res.exit_code == 1 and "not empty" in res.output
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    res = _export(demo, tmp_path / "x.zip", "--vkey", "not-a-key")
    assert res.exit_code == 1 and "verifier key" in res.output and not (tmp_path / "x.zip").exists()
