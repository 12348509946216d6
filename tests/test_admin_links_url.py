"""`tallymark admin presign --url` and `admin sessions list|revoke --url`: login links and sessions
administered over HTTP (/api/v1/admin/links, /api/v1/admin/users/{name}/sessions[/revoke]) against a
real server process with auth on, with a server admin's key; anyone else gets 404 (401 anonymous)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tallymark.cli import app
from tallymark.service import apikeys, audit, memberships, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

from servers import ServerProcess


@dataclass
class Server:
    proc: ServerProcess
    home: Path
    admin_key: str = field(repr=False)
    dana_key: str = field(repr=False)

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("admin-url") / "home"
    home.mkdir()
    store = open_store(Settings(home=home))
    try:
        root = init_admin(store, "root")
        admin = local_admin("root")
        workspaces.create_workspace(store, admin, "risk")
        users.add_user(store, admin, "dana")
        memberships.add_member(store, admin, "risk", "dana", "member")
        dana = apikeys.create_key(store, admin, "dana").secret
    finally:
        store.close()
    proc = ServerProcess(home, auth=True).start()
    try:
        yield Server(proc, home, root.secret, dana)
    finally:
        proc.stop()


def _admin(server: Server, *args: str, key: str | None = None):
    env = {"TALLYMARK_API_KEY": key or server.admin_key}
    return CliRunner().invoke(app, ["admin", *args, "--url", server.url], env=env)


def _actions(home: Path) -> list[tuple[str, str]]:
    store = open_store(Settings(home=home))
    try:
        return [(e["actor"], e["action"]) for e in audit.entries(store)]
    finally:
        store.close()


def test_a_link_issued_with_url_logs_its_user_in_once(server):
    out = _admin(server, "presign", "--user", "dana", "--workspace", "risk", "--expires", "2m")
    assert out.exit_code == 0, out.output
    link = out.stdout.strip().splitlines()[-1]
    assert link.startswith(f"{server.url}/login/link/tml1.")  # the server's public URL
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.get(link, follow_redirects=False).status_code == 200  # the page with the button
        r = browser.post(link, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/risk"
        assert "You are logged in as" in browser.get("/login").text
        assert browser.get("/api/v1/workspaces").json()["workspaces"][0]["name"] == "risk"
        assert browser.post(link, follow_redirects=False).status_code == 410  # single use
    assert ("root", "link.issue") in _actions(server.home)
    assert link.rsplit("/", 1)[1] not in server.proc.log.read_text(errors="replace")


def test_the_links_rules_are_the_clis(server):
    too_long = _admin(server, "presign", "--user", "dana", "--expires", "10m")
    assert too_long.exit_code == 1 and "5s to 5m" in too_long.output
    short_session = _admin(server, "presign", "--user", "dana", "--session", "10m")
    assert short_session.exit_code == 1 and "30m to 12h" in short_session.output
    elsewhere = _admin(server, "presign", "--user", "dana", "--path", "//evil.example")
    assert elsewhere.exit_code == 1 and "another host" in elsewhere.output
    nobody = _admin(server, "presign", "--user", "nobody")
    assert nobody.exit_code == 1 and "404" in nobody.output
    both = _admin(server, "presign", "--user", "dana", "--public-url", "https://x.example")
    assert both.exit_code == 1 and "--public-url" in both.output


def test_sessions_revoked_with_url_end_the_users_ui_session(server):
    out = _admin(server, "presign", "--user", "dana")
    assert out.exit_code == 0, out.output
    link = out.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.post(link, follow_redirects=False).status_code == 303
        assert browser.get("/api/v1/workspaces").status_code == 200
        listed = _admin(server, "sessions", "list", "--user", "dana")
        assert listed.exit_code == 0 and "link" in listed.stdout, listed.output
        ended = _admin(server, "sessions", "revoke", "--user", "dana")
        assert ended.exit_code == 0 and "ended" in ended.stdout and "session(s) of dana" in ended.stdout
        assert browser.get("/api/v1/workspaces").status_code == 401  # the cookie is dead at once
        assert "You are logged in as" not in browser.get("/login").text
    empty = httpx.get(
        f"{server.url}/api/v1/admin/users/dana/sessions",
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=30,
    )
    assert empty.status_code == 200 and empty.json()["sessions"] == []
    assert ("root", "session.revoke") in _actions(server.home)


def test_only_a_server_admins_key_may_issue_links_and_end_sessions(server):
    for args in (("presign", "--user", "dana"), ("sessions", "revoke", "--user", "root")):
        refused = _admin(server, *args, key=server.dana_key)
        assert refused.exit_code == 1 and "404" in refused.output, refused.output
    dana = {"Authorization": f"Bearer {server.dana_key}"}
    for method, path, body in (
        ("POST", "/api/v1/admin/links", {"user": "dana"}),
        ("GET", "/api/v1/admin/users/root/sessions", None),
        ("POST", "/api/v1/admin/users/root/sessions/revoke", {}),
    ):
        url = server.url + path
        assert httpx.request(method, url, headers=dana, json=body, timeout=30).status_code == 404, path
        assert httpx.request(method, url, json=body, timeout=30).status_code == 401, path


def test_every_admin_route_declares_its_server_admin_operation():
    from tallymark.server.permissions import operations_of
    from tallymark.server.routes.admin import router
    from tallymark.service.operations import OPERATIONS

    declared = {(sorted(r.methods)[0], r.path): operations_of(r) for r in router.routes}
    assert len(declared) == 14
    for route, ops in declared.items():
        assert len(ops) == 1 and OPERATIONS[ops[0]].permission == "server:admin", (route, ops)
    assert declared[("POST", "/admin/links")] == ("link.issue",)
    assert declared[("POST", "/admin/users/{name}/sessions/revoke")] == ("session.revoke",)
    assert declared[("GET", "/admin/users/{name}/sessions")] == ("session.list",)
