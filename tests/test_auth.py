"""Authentication and deny-by-default authorization, against real ``tallymark server`` processes with
auth on (docs/security.md, "Authentication and permissions").

One server is seeded before it starts, through the service layer on its home: a server admin, two
workspaces (``risk`` with a viewer, a member, a workspace admin and an approver; ``ops`` with a
member of its own), experiments, an artifact version with a file, and a model version with a pending
production request by the member. Every request is then made over HTTP with those users' keys.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tallymark.service import apikeys, artifacts, experiments, memberships, registry, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

from servers import ServerProcess, new_key

ROLES = ("anonymous", "viewer", "member", "admin", "approver", "other")


ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


@dataclass
class World:
    server: ServerProcess
    keys: dict[str, str] = field(repr=False)  # role → raw key (kept out of failure output)
    risk_key: str  # an experiment of workspace risk
    ops_key: str  # an experiment of workspace ops
    blob: str  # sha256 of a file of an artifact version of risk
    model_version: str
    request_id: int
    issued: list[str] = field(default_factory=list, repr=False)

    def get(self, role: str, path: str, **kw) -> httpx.Response:
        return self.request("GET", role, path, **kw)

    def post(self, role: str, path: str, **kw) -> httpx.Response:
        return self.request("POST", role, path, **kw)

    def request(self, method: str, role: str, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        sent = {**self.headers(role), **(headers or {})}
        return httpx.request(method, self.server.url + path, headers=sent, timeout=30, **kw)

    def headers(self, role: str) -> dict[str, str]:
        return {} if role == "anonymous" else {"Authorization": f"Bearer {self.keys[role]}"}


def _seed(home: Path) -> dict:
    settings = Settings(home=home)
    store = open_store(settings)
    try:
        root = init_admin(store, "root")
        admin = local_admin("root")
        keys = {"server_admin": root.secret}
        for ws in ("risk", "ops"):
            workspaces.create_workspace(store, admin, ws)
        people = {
            "viewer": ("vera", "risk", "viewer", False),
            "member": ("mia", "risk", "member", False),
            "admin": ("ada", "risk", "admin", False),
            "approver": ("apu", "risk", "member", True),
            "other": ("bob", "ops", "member", False),
        }
        for role, (name, ws, r, appr) in people.items():
            users.add_user(store, admin, name)
            memberships.add_member(store, admin, ws, name, r, approver=appr)
            keys[role] = apikeys.create_key(store, admin, name).secret
        risk_key, ops_key, train = new_key(), new_key(), new_key()
        experiments.create_experiment(
            store, local_admin("mia"), {"key": risk_key, "workspace": "risk", "project": "fraud"}
        )
        experiments.create_experiment(
            store, local_admin("bob"), {"key": ops_key, "workspace": "ops", "project": "infra"}
        )
        experiments.create_experiment(
            store, local_admin("mia"), {"key": train, "workspace": "risk", "project": "fraud"}
        )
        data = b"secret,rows\n1,2\n"
        sha, size = store.blobs.put(iter([data]), 1 << 30)
        artifacts.log_artifact_version(
            store,
            local_admin("mia"),
            "risk",
            "fraud-dataset",
            {"artifact_type": "dataset", "files": [{"logical_path": "d.csv", "sha256": sha, "size": size}]},
        )
        msha, msize = store.blobs.put(iter([b'{"trees": 1}']), 1 << 30)
        registry.log_model(
            store,
            ADMIN,
            train,
            {"name": "m", "files": [{"logical_path": "m.json", "sha256": msha, "size": msize}]},
        )
        mv = registry.register_model(
            store, local_admin("mia"), "risk", "m", {"experiment_key": train, "experiment_model": "m"}
        )
        req = registry.request_status(
            store, local_admin("mia"), "risk", "m", mv["version"], {"status": "production"}
        )
        # Keys that must not authenticate: revoked, and expired (one second of life, see below).
        revoked = apikeys.create_key(store, admin, "mia", name="gone")
        apikeys.revoke_key(store, admin, revoked.id)
        expired = apikeys.create_key(store, admin, "mia", name="short", expires="1s")
        return {
            "keys": keys,
            "risk_key": risk_key,
            "ops_key": ops_key,
            "blob": sha,
            "model_version": mv["version"],
            "request_id": req["id"],
            "revoked": revoked.secret,
            "expired": expired.secret,
        }
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("auth") / "home"
    home.mkdir()
    seeded = _seed(home)
    server = ServerProcess(home, auth=True).start()
    w = World(
        server,
        seeded["keys"],
        seeded["risk_key"],
        seeded["ops_key"],
        seeded["blob"],
        seeded["model_version"],
        seeded["request_id"],
    )
    w.keys["revoked"], w.keys["expired"] = seeded["revoked"], seeded["expired"]
    w.issued = list(w.keys.values())
    try:
        yield w
    finally:
        server.stop()


def test_health_is_public_and_says_auth_is_on(world):
    r = world.get("anonymous", "/api/v1/health")
    assert r.status_code == 200 and r.json()["auth"] == "api_key"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workspaces",
        "/api/v1/experiments/{risk}",
        "/",
        "/risk",
        "/api/rest/v2/workspaces",
        "/api/v1/panels",
    ],
)
def test_anonymous_gets_401_with_a_clear_message(world, path):
    r = world.get("anonymous", path.format(risk=world.risk_key))
    assert r.status_code == 401, r.text
    assert "Authorization: Bearer" in r.text


@pytest.mark.parametrize("which", ["wrong", "malformed", "revoked", "expired"])
def test_bad_keys_get_401(world, which):
    if which == "expired":
        time.sleep(1.2)  # the key was created with one second of life before the server started
    key = {
        "wrong": "tm_" + "A" * 40,
        "malformed": "not-a-key",
        "revoked": world.keys["revoked"],
        "expired": world.keys["expired"],
    }[which]
    for headers in ({"Authorization": f"Bearer {key}"}, {"Authorization": key}):
        r = httpx.get(world.server.url + f"/api/v1/experiments/{world.risk_key}", headers=headers, timeout=30)
        assert r.status_code == 401, r.text
        assert key not in r.text


def test_x_tallymark_user_is_ignored_with_auth(world):
    r = httpx.get(world.server.url + "/api/v1/workspaces", headers={"X-Tallymark-User": "root"}, timeout=30)
    assert r.status_code == 401


def test_the_raw_comet_header_authenticates(world):
    r = httpx.get(
        world.server.url + "/api/rest/v2/workspaces",
        headers={"Authorization": world.keys["member"]},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["workspaceNames"] == ["risk"]


def test_another_workspace_is_404_by_key_name_hash_and_comet(world):
    k = world.risk_key
    for path, params in [
        (f"/api/v1/experiments/{k}", None),
        (f"/api/v1/experiments/{k}/params", None),
        ("/api/v1/workspaces/risk/artifacts", None),
        ("/api/v1/workspaces/risk/models/m", None),
        ("/api/v1/experiments", {"workspace": "risk"}),
        (f"/api/v1/blobs/{world.blob}", None),
        ("/api/v1/lineage", {"node": f"experiment:{k}"}),
        ("/api/rest/v2/experiment/metadata", {"experimentKey": k}),
        ("/api/rest/v2/projects", {"workspaceName": "risk"}),
        ("/risk", None),
        (f"/risk/fraud/{k}", None),
    ]:
        r = world.get("other", path, params=params)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
    # the same answer as for what does not exist at all
    assert world.get("other", f"/api/v1/experiments/{new_key()}").status_code == 404
    r = world.post("other", f"/api/v1/experiments/{k}/end", json={})
    assert r.status_code == 404
    comet = {"experimentKey": k, "parameterName": "p", "parameterValue": "1"}
    r = world.post("other", "/api/rest/v2/write/experiment/parameter", json=comet)
    assert r.status_code == 404, r.text
    assert world.post("viewer", "/api/rest/v2/write/experiment/parameter", json=comet).status_code == 403
    assert world.post("member", "/api/rest/v2/write/experiment/parameter", json=comet).status_code == 200
    # and search only shows what the caller may read
    assert [w["name"] for w in world.get("other", "/api/v1/workspaces").json()["workspaces"]] == ["ops"]
    home = world.get("other", "/").text
    assert "/ops" in home and "/risk" not in home


def test_blobs_by_hash_are_for_server_admins_only(world):
    assert world.get("member", f"/api/v1/blobs/{world.blob}").status_code == 404
    r = world.get("server_admin", f"/api/v1/blobs/{world.blob}")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == world.blob


def test_viewer_writes_are_403(world):
    r = world.post("viewer", f"/api/v1/experiments/{world.risk_key}/end", json={})
    assert r.status_code == 403, r.text
    r = world.post(
        "viewer", "/api/v1/experiments", json={"key": new_key(), "workspace": "risk", "project": "p"}
    )
    assert r.status_code == 403, r.text
    # creating in a workspace one has no role in is a 404, as if it did not exist
    r = world.post(
        "other", "/api/v1/experiments", json={"key": new_key(), "workspace": "risk", "project": "p"}
    )
    assert r.status_code == 404, r.text


def test_member_writes_and_is_recorded_as_the_key_s_user(world):
    key = new_key()
    r = world.post(
        "member",
        "/api/v1/experiments",
        json={"key": key, "workspace": "risk", "project": "p"},
        headers={"X-Tallymark-User": "someone-else"},
    )
    assert r.status_code == 201, r.text
    assert world.get("member", f"/api/v1/experiments/{key}").json()["user"] == "mia"


def test_four_eyes_with_real_identities(world):
    rid = world.request_id
    # the requester cannot approve (and a member without the approver flag cannot either)
    assert world.post("member", f"/api/v1/requests/{rid}/approve", json={}).status_code == 403
    assert world.post("admin", f"/api/v1/requests/{rid}/approve", json={}).status_code == 403
    assert world.post("other", f"/api/v1/requests/{rid}/approve", json={}).status_code == 404
    r = world.post("approver", f"/api/v1/requests/{rid}/approve", json={"comment": "reviewed"})
    assert r.status_code == 200, r.text
    assert r.json()["decidedBy"] == "apu"


# (role → expected status) for representative routes; "ok" is 200/201.
MATRIX = [
    ("GET", "/api/v1/experiments/{risk}", None, {"anonymous": 401, "viewer": 200, "member": 200, "admin": 200,
                                                 "approver": 200, "other": 404}),
    ("GET", "/api/v1/workspaces/risk/artifacts", None, {"anonymous": 401, "viewer": 200, "member": 200,
                                                       "admin": 200, "approver": 200, "other": 404}),
    ("POST", "/api/v1/experiments/{risk}/batch", {"batch_id": "b-{role}", "params": {"x": 1}},
     {"anonymous": 401, "viewer": 403, "member": 200, "admin": 200, "approver": 200, "other": 404}),
    ("DELETE", "/api/v1/workspaces/risk/artifacts/nope/versions/9.9.9", None,
     {"anonymous": 401, "viewer": 403, "member": 403, "admin": 404, "approver": 403, "other": 404}),
    ("GET", "/api/v1/blobs/{blob}", None, {"anonymous": 401, "viewer": 404, "member": 404, "admin": 404,
                                          "approver": 404, "other": 404}),
    ("GET", "/risk", None, {"anonymous": 401, "viewer": 200, "member": 200, "admin": 200, "approver": 200,
                            "other": 404}),
    ("GET", "/-/static/app.css", None, {r: 200 for r in ROLES}),
]  # fmt: skip


@pytest.mark.parametrize("method,path,body,expected", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_route_by_role_matrix(world, method, path, body, expected):
    url = world.server.url + path.format(risk=world.risk_key, blob=world.blob)
    got = {}
    for role in ROLES:
        content = None if body is None else json.dumps(body).replace("{role}", role)
        headers = {**world.headers(role), **({"Content-Type": "application/json"} if content else {})}
        r = httpx.request(method, url, headers=headers, content=content, timeout=30)
        got[role] = r.status_code
    assert got == expected


def test_every_route_declares_a_permission():
    from tallymark.server.app import create_app
    from tallymark.server.permissions import PERMISSIONS, route_permissions

    app = create_app(Settings(home=Path("/nonexistent-never-opened")), warm_after=None)
    while not hasattr(app, "warm"):
        app = app.app
    routes = route_permissions([app.api, app.comet.get(), app.ui.get()])
    assert len(routes) > 200, len(routes)  # the lazily built UI and Comet routes are walked too
    undeclared = [(m, p) for m, p, perm in routes if perm is None]
    assert undeclared == []
    assert {perm for _, _, perm in routes} <= set(PERMISSIONS)


def test_keys_never_reach_the_server_log(world):
    # runs last in this module: by now every key above has been sent, good and bad
    log = world.server.log.read_text(errors="replace")
    for key in world.issued:
        assert key not in log


def test_the_tallymark_sdk_logs_with_its_key(world, monkeypatch):
    import tallymark

    for name in ("TALLYMARK_HOME", "TALLYMARK_USER", "TALLYMARK_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    exp = tallymark.Experiment(
        project_name="sdk",
        workspace="risk",
        url=world.server.url,
        api_key=world.keys["member"],
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    )
    exp.log_parameter("lr", 0.1)
    exp.log_metric("loss", 0.5, step=1)
    exp.end()
    got = world.get("viewer", f"/api/v1/experiments/{exp.get_key()}/params").json()["params"]
    assert [p["name"] for p in got] == ["lr"]
    assert world.get("viewer", f"/api/v1/experiments/{exp.get_key()}").json()["user"] == "mia"


COMET_SCRIPT = """
import json, comet_ml

exp = comet_ml.Experiment(project_name="cometproj", workspace="risk")
exp.log_parameter("lr", 0.01)
for i in range(3):
    exp.log_metric("loss", 1.0 / (i + 1), step=i)
exp.end()
print("RESULT " + json.dumps({"key": exp.get_key(), "alive": bool(getattr(exp, "alive", True))}))
"""


def _comet_runner(world, tmp_path, key):
    pytest.importorskip("comet_ml")
    from compat.conftest import CometRunner

    class KeyedRunner(CometRunner):
        def env(self) -> dict[str, str]:
            return {**super().env(), "COMET_API_KEY": key}

    home = tmp_path / "comet-home"
    home.mkdir()
    return KeyedRunner(world.server, home)


def _projects(world, role, workspace="risk"):
    return [p["name"] for p in world.get(role, f"/api/v1/workspaces/{workspace}/projects").json()["projects"]]


def test_comet_ml_with_a_valid_key_logs(world, tmp_path):
    run = _comet_runner(world, tmp_path, world.keys["member"]).run(["-c", COMET_SCRIPT])
    key = run.result["key"]
    assert not run.error_lines, run.output[-3000:]
    exp = world.get("viewer", f"/api/v1/experiments/{key}").json()
    assert (exp["workspace"], exp["project"], exp["user"]) == ("risk", "cometproj", "mia")
    params = world.get("viewer", f"/api/v1/experiments/{key}/params").json()["params"]
    assert "lr" in [p["name"] for p in params]
    metrics = world.get("viewer", f"/api/v1/experiments/{key}/metrics").json()["metrics"]
    assert "loss" in [m["name"] for m in metrics]
    assert world.keys["member"] not in run.output


def test_comet_ml_with_an_invalid_key_reports_and_logs_nothing(world, tmp_path):
    bad = "tm_" + "B" * 40
    script = COMET_SCRIPT.replace("cometproj", "cometbad")
    run = _comet_runner(world, tmp_path, bad).run(["-c", script], expect_result=False, check=False)
    assert run.error_lines, run.output[-3000:]
    assert "cometbad" not in _projects(world, "admin")


def test_two_servers_on_one_postgresql_refuse_a_revoked_key_and_a_disabled_user(pg_server, tmp_path):
    """A key revoked (a user disabled) through one server process is refused by another within 1 s:
    each caches a key's answer for CACHE_TTL_S (0.5 s), so after a second no cache still holds it."""
    from tallymark.server.auth import CACHE_TTL_S

    url = pg_server.create_database(f"auth_{uuid.uuid4().hex[:12]}")
    store = open_store(Settings(home=tmp_path / "seed", db_url=url))
    try:
        init_admin(store, "root")
        admin = local_admin("root")
        workspaces.create_workspace(store, admin, "risk")
        for name in ("mia", "dan"):
            users.add_user(store, admin, name)
            memberships.add_member(store, admin, "risk", name, "member")
        mia = apikeys.create_key(store, admin, "mia")
        dan = apikeys.create_key(store, admin, "dan")
    finally:
        store.close()
    one = ServerProcess(tmp_path / "one", db=url, auth=True).start()
    two = ServerProcess(tmp_path / "two", db=url, auth=True).start()
    try:

        def status(server: ServerProcess, key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.get(server.url + "/api/v1/workspaces", headers=headers, timeout=30).status_code

        assert [status(s, k.secret) for s in (one, two) for k in (mia, dan)] == [200] * 4  # now cached
        store = open_store(Settings(home=tmp_path / "one", db_url=url))  # what server one's admin does
        try:
            apikeys.revoke_key(store, admin, mia.id)
            users.disable_user(store, admin, "dan")
        finally:
            store.close()
        time.sleep(2 * CACHE_TTL_S)  # the 1 s promise: twice the cache's lifetime
        assert [status(s, k.secret) for s in (one, two) for k in (mia, dan)] == [401] * 4
    finally:
        one.stop()
        two.stop()
    for s in (one, two):
        assert mia.secret not in s.log.read_text(errors="replace")


def test_a_server_without_users_says_to_run_admin_init(tmp_path):
    import subprocess
    import sys

    home = tmp_path / "home"
    with ServerProcess(home, auth=True) as server:
        health = httpx.get(server.url + "/api/v1/health", timeout=30).json()
        assert health["auth"] == "needs admin init" and "tallymark admin init" in health["message"]
        r = httpx.get(server.url + "/api/v1/workspaces", timeout=30)
        assert r.status_code == 401 and "tallymark admin init" in r.json()["error"]["message"]
        done = subprocess.run(
            [sys.executable, "-m", "tallymark", "admin", "init", "--home", str(home), "--user", "root"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        key = done.stdout.strip().splitlines()[-1]
        assert apikeys.is_well_formed(key)
        time.sleep(1.1)  # the server re-reads "is there an admin" once a second
        r = httpx.get(
            server.url + "/api/v1/workspaces", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert r.status_code == 200 and r.json()["workspaces"] == []
        assert httpx.get(server.url + "/api/v1/health", timeout=30).json()["auth"] == "api_key"
    assert key not in server.log.read_text(errors="replace")
    assert "admin init" in server.log.read_text(errors="replace")


def test_the_ui_session_cookie_authenticates_and_its_writes_need_the_csrf_token(world):
    """Log into the UI with a key (POST /login), then use only the cookies, as a browser does."""
    base = world.server.url
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as browser:
        r = browser.post("/login", data={"key": world.keys["approver"], "next": "/risk"})
        assert r.status_code == 303, r.text
        assert {"tallymark_session", "tallymark_csrf"} <= set(browser.cookies.keys())
        assert browser.get("/api/v1/workspaces").status_code == 200  # reads: the cookie is enough
        path = f"/api/v1/workspaces/risk/models/m/versions/{world.model_version}/tags"
        # a write with the cookie alone (what a cross-site page could make a browser send) is refused
        refused = browser.post(path, params={"tag": "from-cookie"}, json={})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
        wrong = browser.post(
            path, params={"tag": "from-cookie"}, json={}, headers={"X-Tallymark-CSRF": "0" * 64}
        )
        assert wrong.status_code == 403
        token = browser.cookies["tallymark_csrf"]
        ok = browser.post(path, params={"tag": "from-cookie"}, json={}, headers={"X-Tallymark-CSRF": token})
        assert ok.status_code == 200, ok.text
        assert "from-cookie" in ok.json()["tags"]
        # logged out: the cookie authenticates nothing any more
        assert browser.post("/logout", data={"csrf": token}).status_code == 303
        browser.cookies.clear()
    with httpx.Client(base_url=base, timeout=30) as stale:
        stale.cookies.set("tallymark_session", "tms_" + "0" * 43)
        assert stale.get("/api/v1/workspaces").status_code == 401


def test_server_admins_manage_users_workspaces_members_and_keys_over_http(world):
    """/api/v1/admin/…: what `tallymark admin` does on a store, for an admin who reaches the server."""
    assert world.get("anonymous", "/api/v1/admin/users").status_code == 401
    for role in ("member", "admin", "approver"):  # a workspace admin is no server admin: 404, as for blobs
        assert world.get(role, "/api/v1/admin/users").status_code == 404, role
        assert world.post(role, "/api/v1/admin/users", json={"name": "mallory"}).status_code == 404
    boss = "server_admin"
    assert world.post(boss, "/api/v1/admin/users", json={"name": "zoe"}).status_code == 201
    assert world.post(boss, "/api/v1/admin/workspaces", json={"name": "lab"}).status_code == 201
    r = world.request("PUT", boss, "/api/v1/admin/workspaces/lab/members/zoe", json={"role": "member"})
    assert r.status_code == 200 and r.json()["role"] == "member"
    members = world.get(boss, "/api/v1/admin/workspaces/lab/members").json()["members"]
    assert [m["user"] for m in members] == ["zoe"]
    made = world.post(boss, "/api/v1/admin/keys", json={"user": "zoe", "name": "laptop", "expires": "1d"})
    assert made.status_code == 201
    key = made.json()["key"]
    world.issued.append(key)
    assert apikeys.is_well_formed(key)
    listed = world.get(boss, "/api/v1/admin/keys", params={"user": "zoe"}).json()["keys"]
    assert [k["prefix"] for k in listed] == [made.json()["prefix"]] and key not in json.dumps(listed)
    zoe = {"Authorization": f"Bearer {key}"}
    assert (
        httpx.get(world.server.url + "/api/v1/workspaces", headers=zoe).json()["workspaces"][0]["name"]
        == "lab"
    )
    assert world.post(boss, f"/api/v1/admin/keys/{made.json()['id']}/revoke", json={}).status_code == 200
    time.sleep(1.0)  # the key cache lives 0.5 s
    assert httpx.get(world.server.url + "/api/v1/workspaces", headers=zoe).status_code == 401
    assert world.request("DELETE", boss, "/api/v1/admin/workspaces/lab/members/zoe").status_code == 200
    assert world.post(boss, "/api/v1/admin/users/zoe/disable", json={}).status_code == 200
    bad = world.post(boss, "/api/v1/admin/keys", json={"user": "zoe"})
    assert bad.status_code == 409 and "disabled" in bad.json()["error"]["message"]


def test_tallymark_admin_with_url_administers_a_server_with_an_admins_key(world):
    from typer.testing import CliRunner

    from tallymark.cli import app

    runner = CliRunner()
    url = world.server.url

    def admin(*args: str, key: str | None = None):
        env = {"TALLYMARK_API_KEY": key or world.keys["server_admin"]}
        return runner.invoke(app, ["admin", *args, "--url", url], env=env)

    assert admin("users", "add", "yuri").exit_code == 0
    assert admin("members", "add", "risk", "yuri", "--role", "viewer").exit_code == 0
    listed = admin("members", "list", "risk")
    assert listed.exit_code == 0 and "yuri" in listed.stdout and "viewer" in listed.stdout
    made = admin("keys", "create", "--user", "yuri", "--name", "ci", "--expires", "1h")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    world.issued.append(key)
    assert apikeys.is_well_formed(key)
    yuri = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/api/v1/workspaces", headers=yuri).status_code == 200
    keys = admin("keys", "list", "--user", "yuri")
    assert keys.exit_code == 0 and key not in keys.stdout
    # a member's key is no admin's: refused, and said so
    refused = admin("users", "list", key=world.keys["member"])
    assert refused.exit_code == 1 and "404" in refused.output
    both = runner.invoke(app, ["admin", "users", "list", "--url", url, "--home", "/nonexistent"])
    assert both.exit_code == 1 and "not both" in both.output
