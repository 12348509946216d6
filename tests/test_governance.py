"""Governance data model: users, workspaces, memberships, API keys, authenticate(), `tallymark admin`.

Service tests run on SQLite and PostgreSQL (the `store` fixture); CLI tests drive the real Typer app
against a real store given by --db.
"""

from __future__ import annotations

import hmac
import re
import zlib
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tallymark.cli import app
from tallymark.service import apikeys, bootstrap, memberships, users, workspaces
from tallymark.service.apikeys import ALPHABET, KEY_PATTERN, authenticate, is_well_formed
from tallymark.service.caller import Caller, local_admin
from tallymark.service.errors import Conflict, Forbidden, Invalid, NotFound
from tallymark.store import schema

ADMIN = local_admin("root")
DOCS = Path(__file__).resolve().parent.parent / "docs"


# ----- key format -----


def _decode62(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 62 + ALPHABET.index(ch)
    return n


def test_key_format_matches_the_documented_regex_and_checksum():
    assert ALPHABET == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    seen = set()
    for _ in range(300):
        key = apikeys.generate_key()
        assert re.fullmatch(r"tm_[0-9A-Za-z]{40}", key) and is_well_formed(key)
        # The documented checksum, recomputed independently: CRC-32 of the 34 random characters,
        # base62 (0-9A-Za-z), most significant digit first, 6 digits.
        assert _decode62(key[37:]) == zlib.crc32(key[3:37].encode("ascii"))
        seen.add(key)
    assert len(seen) == 300
    assert KEY_PATTERN in (DOCS / "security.md").read_text()


def test_a_key_with_any_one_character_changed_fails_the_checksum():
    key = apikeys.generate_key()
    for i in range(3, len(key)):
        for ch in ALPHABET:
            if ch != key[i]:
                changed = key[:i] + ch + key[i + 1 :]
                assert not is_well_formed(changed), (i, ch)


@pytest.mark.parametrize(
    "bad", ["", "tm_", "tm_" + "a" * 39, "tm_" + "a" * 41, "TM_" + "a" * 40, "tm_" + "a" * 39 + "-", None, 42]
)
def test_malformed_keys_are_refused_without_the_database(bad):
    assert not is_well_formed(bad)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("45s", 45_000), ("30m", 1_800_000), ("12h", 43_200_000), ("90d", 7_776_000_000), ("2w", 1_209_600_000)],
)
def test_expiry_durations(text, ms):
    assert apikeys.parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "90", "d", "-1d", "0d", "1.5h", "90 days", "90D", "3651d", "1y"])
def test_bad_expiry_durations_say_how_to_write_one(bad):
    with pytest.raises(Invalid, match=r"30m|10 years|longer than zero"):
        apikeys.parse_duration(bad)


# ----- keys in the store -----


def _setup(store) -> dict:
    """root (server admin), dana member+approver of risk, eve viewer of risk, fred member of other."""
    root_key = bootstrap.init_admin(store, "root")
    for name in ("dana", "eve", "fred"):
        users.add_user(store, ADMIN, name)
    for ws in ("risk", "other"):
        workspaces.create_workspace(store, ADMIN, ws)
    memberships.add_member(store, ADMIN, "risk", "dana", "member", approver=True)
    memberships.add_member(store, ADMIN, "risk", "eve", "viewer")
    memberships.add_member(store, ADMIN, "other", "fred", "member")
    keys = {n: apikeys.create_key(store, ADMIN, n, name="laptop") for n in ("dana", "eve", "fred")}
    return {"root": root_key, **keys}


def test_keys_are_stored_as_sha256_only(store, settings):
    keys = _setup(store)
    secrets_ = [k.secret for k in keys.values()]
    with store.db.read() as conn:
        dumped = repr([conn.execute(select(t)).all() for t in schema.metadata.sorted_tables])
        hashes = set(conn.execute(select(schema.api_keys.c.key_sha256)).scalars())
    for s in secrets_:
        assert s not in dumped
        assert apikeys.key_sha256(s) in hashes
    if store.db.dialect == "sqlite":  # the database files themselves, WAL included
        store.close()
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert apikeys.key_sha256(secrets_[0]).encode() in raw
        for s in secrets_:
            assert s.encode() not in raw
            assert s[11:].encode() not in raw  # not even the part after the shown prefix


def test_a_new_key_never_shows_in_a_repr_or_a_message(store):
    keys = _setup(store)
    k = keys["dana"]
    for text in (repr(k), str(k), f"{k}", repr(authenticate(store, k.secret))):
        assert k.secret not in text
        assert k.secret[11:] not in text
    listed = repr(apikeys.list_keys(store, ADMIN))
    assert all(v.secret not in listed for v in keys.values())


def test_authentication_compares_in_constant_time(store, monkeypatch):
    keys = _setup(store)
    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert authenticate(store, keys["dana"].secret).name == "dana"
    digest = apikeys.key_sha256(keys["dana"].secret)
    assert (digest, digest) in calls


def test_authenticate_returns_the_caller_with_roles_per_workspace(store):
    keys = _setup(store)
    dana = authenticate(store, keys["dana"].secret)
    assert isinstance(dana, Caller)
    assert (dana.name, dana.is_admin, dana.auth_method, dana.key_id) == (
        "dana",
        False,
        "api_key",
        keys["dana"].id,
    )
    assert dict(dana.roles) == {"risk": "member"} and dana.approver == frozenset({"risk"})
    assert dana.has_role("risk", "member") and dana.has_role("risk", "viewer")
    assert not dana.has_role("risk", "admin") and dana.may_approve("risk")
    # a member of workspace A has no role at all in B
    assert (
        dana.role("other") is None and not dana.has_role("other", "viewer") and not dana.may_approve("other")
    )
    eve = authenticate(store, keys["eve"].secret)
    assert eve.role("risk") == "viewer" and not eve.has_role("risk", "member") and not eve.may_approve("risk")
    fred = authenticate(store, keys["fred"].secret)
    assert dict(fred.roles) == {"other": "member"} and fred.role("risk") is None
    root = authenticate(store, keys["root"].secret)
    assert root.is_admin and dict(root.roles) == {}
    with pytest.raises(TypeError):
        dana.roles["other"] = "admin"  # a caller cannot gain a role on the way


def test_expired_revoked_and_disabled_keys_do_not_authenticate(store):
    keys = _setup(store)
    short = apikeys.create_key(store, ADMIN, "dana", expires="1h")
    assert authenticate(store, short.secret, now=short.expires_at - 1).name == "dana"
    assert authenticate(store, short.secret, now=short.expires_at) is None
    assert {k["id"]: k["state"] for k in apikeys.list_keys(store, ADMIN, "dana")}[short.id] == "active"

    assert authenticate(store, keys["eve"].secret) is not None
    revoked = apikeys.revoke_key(store, ADMIN, keys["eve"].id)
    assert revoked["state"] == "revoked" and authenticate(store, keys["eve"].secret) is None
    with pytest.raises(Conflict, match="revoked already"):
        apikeys.revoke_key(store, ADMIN, keys["eve"].id)
    with pytest.raises(NotFound):
        apikeys.revoke_key(store, ADMIN, 99999)

    out = users.disable_user(store, ADMIN, "dana")
    assert out["unrevokedKeys"] == 2  # disabling revokes nothing…
    assert authenticate(store, keys["dana"].secret) is None  # …but no key of dana's works any more
    states = {k["id"]: k["state"] for k in apikeys.list_keys(store, ADMIN, "dana")}
    assert states[keys["dana"].id] == "user disabled"
    with pytest.raises(Conflict, match="disabled"):
        apikeys.create_key(store, ADMIN, "dana")
    with pytest.raises(Conflict, match="disabled already"):
        users.disable_user(store, ADMIN, "dana")

    forged = apikeys.generate_key()  # well formed, right checksum, never issued
    assert authenticate(store, forged) is None
    wrong_sum = keys["fred"].secret[:-1] + ("0" if keys["fred"].secret[-1] != "0" else "1")
    assert authenticate(store, wrong_sum) is None
    assert authenticate(store, keys["fred"].secret).name == "fred"


def test_last_used_is_written_at_most_once_a_minute(store):
    keys = _setup(store)
    k = keys["fred"]

    def last_used():
        return {r["id"]: r["lastUsedAt"] for r in apikeys.list_keys(store, ADMIN)}[k.id]

    assert last_used() is None
    t = k.created_at + 1000
    authenticate(store, k.secret, now=t)
    assert last_used() == t
    authenticate(store, k.secret, now=t + 59_000)
    assert last_used() == t
    authenticate(store, k.secret, now=t + 60_000)
    assert last_used() == t + 60_000


def test_admin_init_refuses_when_an_admin_exists(store):
    assert not bootstrap.has_admin(store)
    first = bootstrap.init_admin(store, "root", expires="90d")
    assert bootstrap.has_admin(store) and first.expires_at is not None
    with pytest.raises(Conflict, match="has a server admin already"):
        bootstrap.init_admin(store, "mallory")
    with pytest.raises(Conflict):
        bootstrap.init_admin(store, "root")
    assert [u["name"] for u in users.list_users(store, ADMIN)] == ["root"]
    caller = authenticate(store, first.secret)
    assert caller.is_admin and caller.name == "root"


def test_only_server_admins_manage(store):
    keys = _setup(store)
    dana = authenticate(store, keys["dana"].secret)
    for call in (
        lambda: users.add_user(store, dana, "zoe"),
        lambda: users.list_users(store, dana),
        lambda: workspaces.create_workspace(store, dana, "mine"),
        lambda: memberships.add_member(store, dana, "risk", "eve", "admin"),
        lambda: apikeys.create_key(store, dana, "eve"),
        lambda: apikeys.list_keys(store, dana),
        lambda: apikeys.revoke_key(store, dana, keys["eve"].id),
    ):
        with pytest.raises(Forbidden, match="server admin"):
            call()
    assert authenticate(store, keys["eve"].secret) is not None


def test_user_names_and_the_last_admin(store):
    bootstrap.init_admin(store, "root")
    for bad in ("", " ", "a b", "dаna", "-x", "a/b", "x" * 201, "tab\there", "new\nline"):
        with pytest.raises(Invalid, match="cannot name a user"):
            users.add_user(store, ADMIN, bad)
    users.add_user(store, ADMIN, "dana.lee@example.com", display_name="Dana Lee")
    with pytest.raises(Conflict, match="only in case"):
        users.add_user(store, ADMIN, "Dana.Lee@example.com")
    with pytest.raises(Conflict, match="last enabled server admin"):
        users.disable_user(store, ADMIN, "root")
    users.add_user(store, ADMIN, "second", is_admin=True)
    assert users.disable_user(store, ADMIN, "root")["disabledAt"] is not None
    with pytest.raises(NotFound, match="admin users add"):
        apikeys.create_key(store, ADMIN, "nobody")


def test_memberships(store):
    _setup(store)
    with pytest.raises(Invalid, match="not a role"):
        memberships.add_member(store, ADMIN, "risk", "fred", "owner")
    with pytest.raises(Invalid, match="viewer cannot be an approver"):
        memberships.add_member(store, ADMIN, "risk", "fred", "viewer", approver=True)
    with pytest.raises(NotFound, match="workspaces create"):
        memberships.add_member(store, ADMIN, "nowhere", "fred", "member")
    changed = memberships.add_member(store, ADMIN, "risk", "eve", "admin")
    assert changed["previous"] == {"role": "viewer", "approver": False} and changed["role"] == "admin"
    listed = {m["user"]: (m["role"], m["approver"]) for m in memberships.list_members(store, ADMIN, "risk")}
    assert listed == {"dana": ("member", True), "eve": ("admin", False)}
    assert [m["user"] for m in memberships.list_members(store, ADMIN, "other")] == ["fred"]
    memberships.remove_member(store, ADMIN, "risk", "dana")
    with pytest.raises(NotFound, match="no member"):
        memberships.remove_member(store, ADMIN, "risk", "dana")
    with store.db.read() as conn:
        dana_id = users.user_row(conn, "dana").id
        assert memberships.roles_of(conn, dana_id) == ({}, frozenset())


def test_workspaces(store):
    created = workspaces.create_workspace(store, ADMIN, "risk")
    assert created["name"] == "risk"
    with pytest.raises(Conflict, match="exists already"):
        workspaces.create_workspace(store, ADMIN, "risk")
    for bad in ("a/b", "..", "", "x\n"):
        with pytest.raises(Invalid, match="workspace name"):
            workspaces.create_workspace(store, ADMIN, bad)
    assert [(w["name"], w["members"]) for w in workspaces.list_workspaces(store, ADMIN)] == [("risk", 0)]


def test_local_admin_has_every_role():
    c = local_admin("alice")
    assert c.is_admin and c.has_role("anything", "admin") and c.may_approve("anything")
    assert c.auth_method == "local" and c.user_id is None


# ----- the CLI -----


def _cli(*args: str, db: str):
    return CliRunner().invoke(
        app, ["admin", *args, "--db", db], env={"COLUMNS": "200", "TALLYMARK_USER": "ops"}
    )


KEY_RE = re.compile(KEY_PATTERN)


def test_cli_admin_workflow_prints_each_key_once(db_url):
    init = _cli("init", "--user", "root", db=db_url)
    assert init.exit_code == 0, init.output
    root_key = init.stdout.strip()
    assert is_well_formed(root_key) and init.stdout == root_key + "\n"
    assert "shown only this once" in init.stderr and init.output.count(root_key) == 1

    again = _cli("init", "--user", "other", db=db_url)
    assert again.exit_code == 1 and "server admin already" in again.stderr and not KEY_RE.search(again.output)

    assert _cli("users", "add", "dana", "--display-name", "Dana", db=db_url).exit_code == 0
    assert _cli("workspaces", "create", "risk", db=db_url).exit_code == 0
    added = _cli("members", "add", "risk", "dana", "--role", "member", "--approver", db=db_url)
    assert added.exit_code == 0 and "member and approver in risk" in added.stdout
    bad_role = _cli("members", "add", "risk", "dana", "--role", "boss", db=db_url)
    assert bad_role.exit_code == 1 and "not a role" in bad_role.stderr

    bad_exp = _cli("keys", "create", "--user", "dana", "--expires", "soon", db=db_url)
    assert bad_exp.exit_code == 1 and "e.g. 30m, 12h or 90d" in bad_exp.stderr
    made = _cli("keys", "create", "--user", "dana", "--name", "laptop", "--expires", "90d", db=db_url)
    assert made.exit_code == 0
    dana_key = made.stdout.strip()
    assert is_well_formed(dana_key) and made.output.count(dana_key) == 1

    listed = _cli("keys", "list", db=db_url)
    assert listed.exit_code == 0 and not KEY_RE.search(listed.output)
    assert dana_key[:11] in listed.stdout and root_key[:11] in listed.stdout and "laptop" in listed.stdout
    only = _cli("keys", "list", "--user", "dana", db=db_url)
    assert dana_key[:11] in only.stdout and root_key[:11] not in only.stdout

    members = _cli("members", "list", "risk", db=db_url)
    assert "dana" in members.stdout and "member" in members.stdout and "ops" in members.stdout
    users_out = _cli("users", "list", db=db_url)
    assert "Dana" in users_out.stdout and "root" in users_out.stdout
    assert "risk" in _cli("workspaces", "list", db=db_url).stdout

    disabled = _cli("users", "disable", "dana", db=db_url)
    assert disabled.exit_code == 0 and "not revoked" in disabled.stdout
    assert "user disabled" in _cli("keys", "list", "--user", "dana", db=db_url).stdout

    key_id = re.search(r"API key (\d+)", made.stderr).group(1)
    revoked = _cli("keys", "revoke", key_id, db=db_url)
    assert revoked.exit_code == 0 and dana_key[:11] in revoked.stdout and dana_key not in revoked.output
    assert _cli("keys", "revoke", key_id, db=db_url).exit_code == 1
    assert _cli("members", "remove", "risk", "dana", db=db_url).exit_code == 0
    assert "no member" in _cli("members", "remove", "risk", "dana", db=db_url).stderr


def test_cli_prints_stored_names_terminal_safe(db_url):
    assert _cli("init", "--user", "root", db=db_url).exit_code == 0
    assert _cli("users", "add", "dana", "--display-name", "[red]x[/]", db=db_url).exit_code == 0
    out = _cli("users", "list", db=db_url).stdout
    assert "[red]x[/]" in out


def test_concurrent_admin_init_processes_make_exactly_one_admin(db_url, tmp_path):
    """Three real `tallymark admin init` processes on one fresh store: one wins, two are refused."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tallymark", "admin", "init", "--user", f"admin{i}", "--db", db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(3)
    ]
    results = []
    for p in procs:
        out, errs = p.communicate(timeout=120)
        results.append((p.returncode, out, errs))
    winners = [r for r in results if r[0] == 0]
    assert len(winners) == 1, results
    assert is_well_formed(winners[0][1].strip())
    for code, out, errs in results:
        if code != 0:
            assert code == 1 and "server admin already" in errs and out == "", (code, out, errs)
    from tallymark.service.store import open_store
    from tallymark.settings import Settings

    store = open_store(Settings(home=tmp_path / "home", db_url=db_url), upgrade=False)
    try:
        listed = users.list_users(store, ADMIN)
        assert [u["isAdmin"] for u in listed] == [True]
        assert authenticate(store, winners[0][1].strip()).name == listed[0]["name"]
    finally:
        store.close()


def test_cli_init_names_the_option_when_the_os_user_cannot_be_a_user_name(db_url):
    r = CliRunner().invoke(app, ["admin", "init", "--db", db_url], env={"TALLYMARK_USER": "DOMAIN\\dana"})
    assert r.exit_code == 1 and "--user NAME" in r.stderr and not KEY_RE.search(r.output)
    ok = CliRunner().invoke(app, ["admin", "init", "--db", db_url], env={"TALLYMARK_USER": "dana"})
    assert ok.exit_code == 0 and "server admin dana created" in ok.stderr


def test_every_admin_write_is_an_audit_entry_without_key_material(store):
    """Auth events an auditor asks about: who made whom admin/member/approver, which keys were made
    and revoked — in the audit chain, in the same transaction, and never with the key itself."""
    from tallymark.service import audit

    first = bootstrap.init_admin(store, "alice")
    boss = local_admin("alice")
    workspaces.create_workspace(store, boss, "risk-team")
    users.add_user(store, boss, "bob")
    memberships.add_member(store, boss, "risk-team", "bob", "member")
    memberships.add_member(store, boss, "risk-team", "bob", "member", approver=True)
    key = apikeys.create_key(store, boss, "bob", name="laptop", expires="90d")
    apikeys.revoke_key(store, boss, key.id)
    memberships.remove_member(store, boss, "risk-team", "bob")
    users.disable_user(store, boss, "bob")

    with store.db.read() as conn:
        rows = conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq)).all()
    assert [(r.actor, r.action, r.object_ref) for r in rows] == [
        ("alice", "admin.init", "alice"),
        ("alice", "workspace.create", "risk-team"),
        ("alice", "user.add", "bob"),
        ("alice", "membership.add", "risk-team/bob"),
        ("alice", "membership.change", "risk-team/bob"),
        ("alice", "api_key.create", str(key.id)),
        ("alice", "api_key.revoke", str(key.id)),
        ("alice", "membership.remove", "risk-team/bob"),
        ("alice", "user.disable", "bob"),
    ]
    report = audit.verify(store)
    assert report.ok and report.size == 9, report.problem
    text = repr([tuple(r) for r in rows])
    for secret in (first.secret, key.secret, apikeys.key_sha256(key.secret)):
        assert secret not in text


@pytest.mark.parametrize("name", ["login", "api", "-", "Docs", "static"])
def test_reserved_workspace_names_are_refused(store, name):
    from tallymark.service.errors import Invalid

    with pytest.raises(Invalid, match="reserved for the server's own pages"):
        workspaces.create_workspace(store, local_admin("root"), name)


def test_reserved_project_names_are_refused(store):
    from pydantic import ValidationError

    from tallymark.service.models import ExperimentCreate

    with pytest.raises(ValidationError, match="reserved"):
        ExperimentCreate.model_validate({"key": "a" * 32, "workspace": "risk", "project": "artifacts"})
