"""The audit log: the chain, what verify catches, signed checkpoints, concurrent writers, the registry.

Tampering is done as an attacker with database access would: direct SQL on the tables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from tallymark.cli import app
from tallymark.service import audit, experiments, registry
from tallymark.service.caller import local_admin
from tallymark.service.errors import Forbidden
from tallymark.service.signed_note import NoteError, Signer, load_or_create_signer
from tallymark.store.schema import audit_checkpoints, audit_log

from servers import new_key

DOCS = Path(__file__).resolve().parent.parent / "docs"


ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


def _log(store, n: int, actor: str = "alice") -> None:
    for i in range(n):
        with store.db.write() as conn:
            audit.append(conn, actor, "test.write", ("thing", f"ws/t{i}"), "ws", {"i": i})


def _rows(store) -> list[dict]:
    with store.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


def _sql(store, *stmts) -> None:
    with store.db.engine.begin() as conn:
        for s in stmts:
            conn.execute(s)


def _where(store) -> list[str]:
    # --home too: the audit key lives in the home (never the developer's ~/.tallymark)
    return ["--home", str(store.settings.home), "--db", store.settings.database_url]


def _recompute_from(store, seq: int) -> None:
    """Rewrite every hash from entry ``seq`` on so that the chain is consistent again."""
    rows = _rows(store)
    prev = rows[seq - 2]["hash"] if seq > 1 else audit.GENESIS
    with store.db.engine.begin() as conn:
        for r in rows[seq - 1 :]:
            r["prev_hash"] = prev
            prev = audit.entry_hash(r)
            conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == r["seq"])
                .values(prev_hash=r["prev_hash"], hash=prev)
            )


def test_an_untouched_log_verifies(store):
    assert audit.verify(store).ok and audit.verify(store).size == 0
    _log(store, 12)
    report = audit.verify(store)
    assert report.ok and report.size == 12 and report.head == _rows(store)[-1]["hash"]
    rows = _rows(store)
    assert [r["seq"] for r in rows] == list(range(1, 13))
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[3]["payload_sha256"] == audit.payload_sha256({"i": 3})


def test_an_edited_row_is_named(store):
    _log(store, 6)
    _sql(store, update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    report = audit.verify(store)
    assert not report.ok and report.first_bad == 3
    assert "entry 3 was edited" in report.problem


def test_a_deleted_row_is_named(store):
    _log(store, 6)
    _sql(store, delete(audit_log).where(audit_log.c.seq == 4))
    report = audit.verify(store)
    assert report.first_bad == 4 and "entry 4 missing" in report.problem


def test_a_renumbered_first_entry_is_named(store):
    _log(store, 3)
    _sql(store, update(audit_log).where(audit_log.c.seq == 1).values(seq=0))
    report = audit.verify(store)
    assert report.first_bad == 1 and "an entry numbered 0 stands where entry 1 belongs" in report.problem


def test_a_swapped_pair_is_named(store):
    _log(store, 8)
    _sql(
        store,
        update(audit_log).where(audit_log.c.seq == 5).values(seq=-5),
        update(audit_log).where(audit_log.c.seq == 6).values(seq=5),
        update(audit_log).where(audit_log.c.seq == -5).values(seq=6),
    )
    report = audit.verify(store)
    assert report.first_bad == 5
    assert "entry 5 is out of place: it was written as entry 6" in report.problem


def test_an_entry_rewritten_with_its_own_hash_is_named(store):
    _log(store, 6)
    row = _rows(store)[2]
    row["actor"] = "mallory"
    _sql(
        store,
        update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory", hash=audit.entry_hash(row)),
    )
    report = audit.verify(store)
    assert report.first_bad == 3 and "entry 3 was rewritten" in report.problem


def test_a_truncated_tail_is_caught_by_a_checkpoint_and_not_without(store):
    _log(store, 10)
    audit.checkpoint(store)
    _sql(store, delete(audit_log).where(audit_log.c.seq > 8))
    report = audit.verify(store)
    assert (
        report.first_bad == 9 and "truncated" in report.problem and "entries 9–10 deleted" in report.problem
    )
    # The documented limit: with the stored checkpoints gone too, the shorter chain is consistent.
    _sql(store, delete(audit_checkpoints))
    assert audit.verify(store).ok


def test_a_fully_recomputed_chain_is_caught_by_a_kept_checkpoint(store, tmp_path):
    _log(store, 10)
    kept = tmp_path / "elsewhere" / "checkpoint.txt"
    kept.parent.mkdir()
    kept.write_text(audit.checkpoint(store).note)
    _log(store, 5)
    _sql(store, update(audit_log).where(audit_log.c.seq == 4).values(actor="mallory"))
    _recompute_from(store, 4)
    _sql(store, delete(audit_checkpoints))  # database access: the stored checkpoints go too
    assert audit.verify(store).ok  # the chain alone cannot tell
    report = audit.verify(store, kept.read_text())
    assert not report.ok and report.first_bad == 1
    assert "entry 10 does not have the hash the checkpoint given signed" in report.problem
    assert "entries 1–10" in report.problem
    # The command line says the same and exits 1.
    res = CliRunner().invoke(app, ["audit", "verify", "--checkpoint", str(kept), *_where(store)])
    assert res.exit_code == 1 and "entry 10 does not have the hash" in res.output


def test_stored_checkpoints_narrow_down_a_recomputed_chain(store):
    _log(store, 3)
    audit.checkpoint(store)
    _log(store, 7)
    audit.checkpoint(store)
    _sql(store, update(audit_log).where(audit_log.c.seq == 6).values(actor="mallory"))
    _recompute_from(store, 6)
    report = audit.verify(store)
    assert (
        report.first_bad == 4
        and "entries 4–10" in report.problem
        and "entry 3 still matches" in report.problem
    )


def test_checkpoints_with_a_tampered_signature_or_another_key_are_refused(store):
    _log(store, 4)
    good = audit.checkpoint(store).note
    assert audit.verify(store, good).ok and audit.verify(store, good).checkpoints == 2

    body, sig = good.rsplit(" ", 1)
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    report = audit.verify(store, body + " " + flipped)
    assert "the checkpoint given is refused" in report.problem and "does not verify" in report.problem

    altered = good.replace("\n4\n", "\n3\n", 1)  # the body changed, the signature kept
    assert "does not verify" in audit.verify(store, altered).problem

    key = audit.signer(store)
    other = Signer(key.name, os.urandom(32))  # same name, another key: a forger's
    forged = other.sign(audit.checkpoint_text(key.name, 4, _rows(store)[-1]["hash"]))
    assert "is not signed by the key" in audit.verify(store, forged).problem
    assert "is not signed by the key" in audit.verify(store, "garbage\n\n— x AAAA\n").problem

    # A stored checkpoint edited in the database is refused as well.
    _sql(store, update(audit_checkpoints).values(note=altered))
    assert "stored checkpoint #1 (size 4) is refused" in audit.verify(store).problem


def test_verify_with_a_verifier_key_and_without_the_private_key(store, tmp_path):
    _log(store, 3)
    note = audit.checkpoint(store).note
    vkey = audit.signer(store).verifier.encode()
    store.settings.audit_key_file.unlink()  # the auditor's machine holds no private key
    assert audit.verify(store, note, vkey=vkey).ok
    assert "cannot check checkpoint signatures" in audit.verify(store, note).problem
    other = load_or_create_signer(tmp_path / "other.key").verifier.encode()
    assert "not signed by the key" in audit.verify(store, note, vkey=other).problem


_KEY_MAKER = textwrap.dedent(
    """
    import os, sys, time
    from tallymark.service.signed_note import load_or_create_signer
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.002)
    print(load_or_create_signer(__import__("pathlib").Path(sys.argv[1])).verifier.encode())
    """
)


def test_the_key_file_is_private_and_shared_by_concurrent_creators(tmp_path):
    path = tmp_path / "k" / "audit.key"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _KEY_MAKER, str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()
    keys = set()
    for p in procs:
        out, errs = p.communicate(timeout=120)
        assert p.returncode == 0, errs
        keys.add(out.strip())
    assert len(keys) == 1 and sorted(x.name for x in path.parent.iterdir()) == ["audit.key"]
    a = load_or_create_signer(path)
    assert keys == {a.verifier.encode()}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_or_create_signer(path) == a and Signer.decode(path.read_text()) == a
    path.chmod(0o640)
    with pytest.raises(NoteError, match="chmod 600"):
        load_or_create_signer(path)


def test_no_checkpoint_is_signed_over_a_broken_chain(store, caplog):
    _log(store, 4)
    first = audit.checkpoint(store)
    assert audit.checkpoint(store) == first  # nothing new: the same checkpoint
    _log(store, 2)
    _sql(store, update(audit_log).where(audit_log.c.seq == 5).values(actor="mallory"))
    with pytest.raises(audit.ChainBroken, match="entry 5 was edited"):
        audit.checkpoint(store)
    _log(store, 4)
    assert audit.checkpoint_if_due(store, every=5) is None and "entry 5 was edited" in caplog.text
    _sql(store, delete(audit_log).where(audit_log.c.seq > 2))
    with pytest.raises(audit.ChainBroken, match="truncated"):
        audit.checkpoint(store)
    res = CliRunner().invoke(app, ["audit", "checkpoint", *_where(store)])
    assert res.exit_code == 1 and "truncated" in res.output
    with store.db.read() as conn:
        assert conn.execute(select(audit_checkpoints.c.size)).scalars().all() == [4]


def test_checkpoint_if_due_signs_every_n_entries(store):
    _log(store, 4)
    assert audit.checkpoint_if_due(store, every=5) is None
    _log(store, 1)
    cp = audit.checkpoint_if_due(store, every=5)
    assert cp is not None and cp.size == 5
    assert audit.checkpoint_if_due(store, every=5) is None
    with store.db.read() as conn:
        assert conn.execute(select(audit_checkpoints.c.size)).scalars().all() == [5]


def test_append_refuses_a_transaction_that_is_not_the_writer(tmp_path):
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    store = open_store(Settings(home=tmp_path / "h"))
    try:
        with pytest.raises(RuntimeError, match="Database.write"), store.db.read() as conn:
            audit.append(conn, "alice", "test.write", ("thing", "x"), None, None)
    finally:
        store.close()


_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from tallymark.service import audit
    from tallymark.store.db import Database
    url, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    db = Database(url)
    while not os.path.exists(go):  # start together, so that the writers contend
        time.sleep(0.005)
    for i in range(n):
        with db.write() as conn:
            audit.append(conn, name, "test.write", ("thing", f"{name}/{i}"), "ws", {"i": i})
    db.dispose()
    """
)


def test_concurrent_appends_from_several_processes_make_one_gap_free_chain(store, tmp_path):
    _log(store, 1, actor="parent")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, store.settings.database_url, f"w{k}", "60", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    go.touch()
    for p in procs:
        _out, errs = p.communicate(timeout=180)
        assert p.returncode == 0, errs
    report = audit.verify(store)
    assert report.ok and report.size == 1 + 4 * 60
    rows = _rows(store)
    assert [r["seq"] for r in rows] == list(range(1, 242))
    assert {k: sum(r["actor"] == f"w{k}" for r in rows) for k in range(4)} == {k: 60 for k in range(4)}
    # Each writer's entries are in its own order: the chain interleaves writers, never reorders one.
    for k in range(4):
        mine = [r["object_ref"] for r in rows if r["actor"] == f"w{k}"]
        assert mine == [f"w{k}/{i}" for i in range(60)]


def _model(store):
    key = new_key()
    experiments.create_experiment(
        store, local_admin("alice"), {"key": key, "workspace": "risk", "project": "fraud"}
    )
    registry.log_model(store, ADMIN, key, {"name": "xgb", "remote_uri": "s3://models/xgb"})
    return key


def test_the_registry_four_eyes_story_is_in_the_log(store):
    key = _model(store)
    mv = registry.register_model(
        store, local_admin("alice"), "risk", "fraud-xgb", {"experiment_key": key, "experiment_model": "xgb"}
    )
    ref = f"risk/fraud-xgb:{mv['version']}"
    req = registry.request_status(
        store, local_admin("alice"), "risk", "fraud-xgb", mv["version"], {"status": "production"}
    )
    before = len(_rows(store))
    with pytest.raises(Forbidden):
        registry.decide(store, local_admin("alice"), req["id"], True, None)
    assert len(_rows(store)) == before  # a refused write leaves no entry (one transaction)
    registry.decide(store, local_admin("bob"), req["id"], True, {"comment": "reviewed"})
    registry.set_status(
        store, local_admin("carol"), "risk", "fraud-xgb", mv["version"], {"status": "archived"}
    )
    r2 = registry.request_status(
        store, local_admin("alice"), "risk", "fraud-xgb", mv["version"], {"status": "production"}
    )
    registry.decide(store, local_admin("bob"), r2["id"], False, {"comment": "no"})
    rows = [r for r in _rows(store) if not r["action"].startswith("experiment.")]  # not its creation
    got = [(r["actor"], r["action"], r["object_kind"], r["object_ref"], r["workspace"]) for r in rows]
    mv_ = ("model_version", ref, "risk")
    assert got == [
        ("alice", "model.log", "experiment", key, "risk"),  # logging the model is a write too
        ("alice", "model_version.register", *mv_),
        ("alice", "model_version.request", *mv_),
        ("bob", "model_version.approve", *mv_),
        ("bob", "model_version.status", *mv_),
        ("carol", "model_version.status", *mv_),
        ("alice", "model_version.request", *mv_),
        ("bob", "model_version.reject", *mv_),
    ]
    assert audit.verify(store).ok
    assert [r["action"] for r in audit.entries(store, object_ref="risk/fraud-xgb", actor="bob")] == [
        "model_version.approve",
        "model_version.status",
        "model_version.reject",
    ]
    assert audit.entries(store, object_ref="risk/fraud") == []  # a prefix of a name is another object


def test_the_independent_verifier_in_the_docs(store, tmp_path):
    _log(store, 5)
    key = _model(store)
    registry.register_model(
        store, local_admin("z\u00fc"), "risk", "m\u00e9", {"experiment_key": key, "experiment_model": "xgb"}
    )
    note = audit.checkpoint(store).note
    vkey = audit.signer(store).verifier.encode()
    doc = (DOCS / "security.md").read_text()
    code = re.search(r"<!-- verify-independently -->\n```python\n(.*?)```", doc, re.S).group(1)
    ns: dict = {}
    exec(compile(code, "docs/security.md", "exec"), ns)  # noqa: S102 - our own documentation
    rows = json.loads(json.dumps(_rows(store)))  # as an export would hand them over
    hashes = ns["verify_chain"](rows)
    assert hashes[-1] == audit.verify(store).head
    ns["check_checkpoint"](note, vkey, hashes)
    rows[2]["actor"] = "mallory"
    with pytest.raises(AssertionError, match="entry 3 was changed"):
        ns["verify_chain"](rows)
    with pytest.raises(AssertionError, match="truncated"):
        ns["check_checkpoint"](note, vkey, hashes[:-1])


def test_cli_verify_checkpoint_and_log(store, tmp_path):
    _log(store, 3)
    with store.db.write() as conn:
        audit.append(conn, "eve\x1b]52;c;aGk=\x07", "test.write", ("thing", "ws/[bold]x"), "ws", b"raw")
    db = _where(store)
    runner = CliRunner()
    out = tmp_path / "cp.txt"
    res = runner.invoke(app, ["audit", "checkpoint", "--out", str(out), *db])
    assert res.exit_code == 0, res.output
    assert out.read_text().split("\n")[1] == "4" and "verifier key: " in res.output
    res = runner.invoke(app, ["audit", "verify", "--checkpoint", str(out), *db])
    assert res.exit_code == 0 and "intact: 4 entries" in res.output
    res = runner.invoke(app, ["audit", "log", *db], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "\x1b" not in res.output and "eve\\x1b]52;c;aGk=\\x07" in res.output
    assert "ws/[bold]x" in res.output
    res = runner.invoke(
        app, ["audit", "log", "--actor", "alice", "--object", "ws/t1", *db], env={"COLUMNS": "200"}
    )
    assert "ws/t1" in res.output and "ws/t0" not in res.output and "1 entry" in res.output
    assert "0 entries" in runner.invoke(app, ["audit", "log", "--since", "2999-01-01", *db]).output
    assert runner.invoke(app, ["audit", "log", "--since", "yesterday", *db]).exit_code == 1
    _sql(store, update(audit_log).where(audit_log.c.seq == 2).values(action="test.other"))
    res = runner.invoke(app, ["audit", "verify", *db])
    assert res.exit_code == 1 and "entry 2 was edited" in res.output
    res = runner.invoke(app, ["audit", "verify", "--home", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "no database at" in res.output and not (tmp_path / "nowhere").exists()
    res = runner.invoke(app, ["audit", "verify", "--vkey", "nonsense", *db])
    assert res.exit_code == 1 and "verifier key" in res.output


def test_seq_and_prev_hash_constraints_refuse_a_fork(store):
    _log(store, 2)
    row = _rows(store)[1]
    with pytest.raises(IntegrityError):  # a second entry naming entry 2 as its predecessor
        _sql(
            store,
            text(
                "INSERT INTO audit_log (seq, time, actor, action, object_kind, object_ref, "
                "payload_sha256, prev_hash, hash) VALUES (3, 0, 'm', 'a', 'k', 'r', 'p', :p, 'h')"
            ).bindparams(p=row["prev_hash"]),
        )
