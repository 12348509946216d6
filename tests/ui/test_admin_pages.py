"""The admin pages (``/-/admin``, ``/-/admin/audit``) in a real Chromium against a real ``tallymark
server`` with authentication on: a server admin logs in with an API key, sees users, workspaces and
keys, creates a key (shown once, never again), revokes it (then the REST API answers it 401), manages
users and members, and reads the audit log (verified intact, a checkpoint signed from the page).
A member who is no server admin gets 404 on both pages and on the REST audit routes; anonymous 401.

Screenshots go to a temporary directory (``TALLYMARK_SHOTS=DIR`` keeps them in DIR).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from uihelpers import CHROMIUM, CHROMIUM_ARGS, XSS, XSS_IMG, require_browser

from tallymark.service import apikeys, memberships, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

from servers import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]
KEY_RE = re.compile(r"tm_[0-9A-Za-z]{40}")


@dataclass
class World:
    server: ServerProcess
    keys: dict[str, str]
    shots: Path
    home: Path

    @property
    def url(self) -> str:
        return self.server.url


def _seed(home: Path) -> dict[str, str]:
    store = open_store(Settings(home=home))
    try:
        keys = {"root": init_admin(store, "root").secret}
        admin = local_admin("root")
        workspaces.create_workspace(store, admin, "risk")
        users.add_user(store, admin, "mia")
        memberships.add_member(store, admin, "risk", "mia", "member")
        keys["mia"] = apikeys.create_key(store, admin, "mia", name=XSS).secret
        users.add_user(store, admin, "vic", display_name=XSS_IMG)
        return keys
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    home = tmp_path_factory.mktemp("admin") / "home"
    home.mkdir()
    keys = _seed(home)
    shots = Path(os.environ.get("TALLYMARK_SHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(home, auth=True).start()
    try:
        yield World(server, keys, shots, home)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium(world: World) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watch:
    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def tab(chromium: Any, world: World) -> Iterator[tuple[Any, Watch]]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, base_url=world.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = Watch([], [])

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def on_console(msg: Any) -> None:  # a refused write (409, shown in the page) is not a script error
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            watch.errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    try:
        yield page, watch
    finally:
        context.close()


def _login(page: Any, key: str, path: str) -> None:
    page.goto(f"/login?next={path}")
    page.fill("#key", key)
    page.click("#login-form button")
    page.wait_for_url(re.compile(re.escape(path) + "$"))


def _status(world: World, key: str, path: str = "/api/v1/workspaces") -> int:
    return httpx.get(world.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def _until(predicate: Any, what: str, seconds: float = 20.0) -> None:
    """Wait for ``predicate()`` (the server caches a key's answer for under a second)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what}")
        time.sleep(0.1)


def _say(page: Any) -> str:
    page.wait_for_selector("#admin-status:not([hidden])")
    return page.locator("#admin-status").inner_text()


def _row(page: Any, table: str, text: str) -> Any:
    return page.locator(f"#{table} tbody tr", has_text=text)


def test_an_admin_creates_a_key_shown_once_and_revokes_it(world: World, tab: tuple[Any, Watch]) -> None:
    page, watch = tab
    _login(page, world.keys["root"], "/-/admin")
    page.wait_for_selector("#admin-link")  # the header links server admins to this page
    assert page.locator("#whoami").inner_text().split()[:1] == ["root"]
    names = page.locator("#users tbody td.name").all_inner_texts()
    assert names == ["mia", "root", "vic"]
    # user-controlled text is shown as text: a display name and a key name that are HTML
    assert XSS_IMG in _row(page, "users", "vic").inner_text()
    assert XSS in _row(page, "keys", "mia").inner_text()
    assert page.locator("#keys img, #users img, #keys script").count() == 0
    assert "member" in page.locator("tr[data-member=mia] select[name=role]").input_value()
    page.screenshot(path=str(world.shots / "admin.png"), full_page=True)

    # create a key for mia: shown once, in #new-key
    form = page.locator("#create-key-form")
    form.locator("select[name=user]").select_option("mia")
    form.locator("input[name=name]").fill("laptop")
    form.locator("input[name=expires]").fill("90d")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#new-key:not([hidden])")
    secret = page.locator("#new-key-value").inner_text()
    assert KEY_RE.fullmatch(secret), secret
    assert "for mia (laptop)" in page.locator("#new-key-title").inner_text()
    row = _row(page, "keys", "laptop")
    assert row.count() == 1 and "active" in row.inner_text()
    key_id = row.get_attribute("data-key-id")
    assert secret[:11] in row.inner_text() and secret not in page.locator("#admin-body").inner_text()
    assert "Key #" in _say(page)
    page.screenshot(path=str(world.shots / "admin-new-key.png"), full_page=False)
    assert _status(world, secret) == 200  # the key works

    # never again: not after a reload, not in the page's HTML
    page.reload()
    page.wait_for_selector("#admin-body")
    assert page.locator("#new-key").is_hidden()
    assert secret not in page.content()

    # revoke: the button asks again, then the key is refused by the REST API
    button = page.locator(f"button[data-revoke-key='{key_id}']")
    button.click()
    assert button.inner_text() == "Revoke for good?"
    button.click()
    assert f"Key #{key_id} revoked." in _say(page)
    assert "revoked" in page.locator(f"#keys tr[data-key-id='{key_id}']").inner_text()
    assert page.locator(f"button[data-revoke-key='{key_id}']").count() == 0
    _until(lambda: _status(world, secret) == 401, "refused after the revoke")
    assert watch.dialogs == [] and watch.errors == []


def test_an_admin_adds_users_workspaces_and_members(world: World, tab: tuple[Any, Watch]) -> None:
    page, watch = tab
    _login(page, world.keys["root"], "/-/admin")
    form = page.locator("#add-user-form")
    form.locator("input[name=name]").fill("zoe")
    form.locator("input[name=display_name]").fill("Zoë Auditor")
    form.locator("button[type=submit]").click()
    assert _say(page) == "User zoe added."
    assert "Zoë Auditor" in _row(page, "users", "zoe").inner_text()

    form = page.locator("#create-workspace-form")
    form.locator("input[name=name]").fill("ops")
    form.locator("button[type=submit]").click()
    assert _say(page) == "Workspace ops created."
    page.wait_for_selector(".ws-card[data-workspace=ops]")

    form = page.locator("#set-member-form")
    form.locator("select[name=workspace]").select_option("ops")
    form.locator("select[name=user]").select_option("zoe")
    form.locator("select[name=role]").select_option("viewer")
    form.locator("button[type=submit]").click()
    assert _say(page) == "zoe is now viewer of ops."

    row = page.locator("tr[data-workspace=ops][data-member=zoe]")
    row.locator("select[name=role]").select_option("admin")
    row.locator("input[name=approver]").check()
    row.locator("button[data-save-member]").click()
    assert _say(page) == "zoe is now admin of ops, approver."
    row = page.locator("tr[data-workspace=ops][data-member=zoe]")
    assert row.locator("select[name=role]").input_value() == "admin"
    assert row.locator("input[name=approver]").is_checked()

    # an error of the REST route is shown as it is (a duplicate user)
    form = page.locator("#add-user-form")
    form.locator("input[name=name]").fill("zoe")
    form.locator("button[type=submit]").click()
    assert "exists already" in _say(page)
    assert page.locator("#admin-status.error").count() == 1

    button = page.locator("tr[data-workspace=ops][data-member=zoe] button[data-remove-member]")
    button.click()
    button.click()
    assert _say(page) == "zoe removed from ops."
    assert page.locator("tr[data-workspace=ops][data-member=zoe]").count() == 0

    button = page.locator("button[data-disable-user=zoe]")
    button.click()
    button.click()
    assert _say(page) == "User zoe disabled."
    assert "disabled" in (_row(page, "users", "zoe").get_attribute("class") or "")
    assert watch.dialogs == [] and watch.errors == []


def test_the_audit_page_lists_verifies_and_signs(world: World, tab: tuple[Any, Watch]) -> None:
    page, watch = tab
    _login(page, world.keys["root"], "/-/admin/audit")
    banner = page.locator("#verify-banner")
    assert banner.get_attribute("data-ok") == "true"
    assert "Audit log intact" in banner.inner_text()
    seqs = [
        int(s)
        for s in page.locator("#audit-entries tbody tr").evaluate_all("rs => rs.map(r => r.dataset.seq)")
    ]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1  # newest first, all of a small log
    actions = page.locator("#audit-entries tbody td:nth-child(4)").all_inner_texts()
    assert {"admin.init", "user.add", "api_key.create", "session.login"} <= set(actions)
    bars = page.locator("#audit-chart rect.bar:not(.zero)")
    assert bars.count() >= 1 and sum(
        int(c) for c in bars.evaluate_all("bs => bs.map(b => b.dataset.count)")
    ) == len(seqs)
    page.screenshot(path=str(world.shots / "audit.png"), full_page=True)

    page.click("#sign-checkpoint")
    page.wait_for_selector("#audit-status:not([hidden])")
    assert page.locator("#audit-status").inner_text().startswith("Checkpoint signed:")
    banner = page.locator("#verify-banner")
    assert banner.get_attribute("data-ok") == "true"
    assert "1 signed checkpoint matches" in banner.inner_text()
    top = page.locator("#audit-entries tbody tr").first
    assert "audit.checkpoint" in top.inner_text() and "root" in top.inner_text()

    page.fill("#audit-filters input[name=action]", "api_key")
    page.fill("#audit-filters input[name=actor]", "root")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url(re.compile(r"action=api_key"))
    filtered = page.locator("#audit-entries tbody td:nth-child(4)").all_inner_texts()
    assert filtered and all(a.startswith("api_key.") for a in filtered)
    page.screenshot(path=str(world.shots / "audit-filtered.png"), full_page=False)

    page.goto("/-/admin/audit?limit=3")
    assert page.locator("#audit-entries tbody tr").count() == 3
    page.click("#audit-older")
    older = [
        int(s)
        for s in page.locator("#audit-entries tbody tr").evaluate_all("rs => rs.map(r => r.dataset.seq)")
    ]
    assert len(older) == 3 and max(older) < min(seqs[:1] + [10**9])
    assert watch.dialogs == [] and watch.errors == []


def test_members_and_anonymous_never_see_the_admin_pages(world: World, tab: tuple[Any, Watch]) -> None:
    mia = world.keys["mia"]
    for path in ("/-/admin", "/-/admin/audit", "/api/v1/admin/audit", "/api/v1/admin/audit/verify"):
        assert _status(world, mia, path) == 404, path
        assert httpx.get(world.url + path, timeout=30).status_code == 401, path
    for key, expected in ((mia, 404), (None, 401)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = httpx.post(world.url + "/api/v1/admin/audit/checkpoint", headers=headers, timeout=30)
        assert r.status_code == expected, r.text

    page, watch = tab
    page.goto("/-/admin")  # anonymous: the login form, which comes back here
    assert "/login?next=%2F-%2Fadmin" in page.url
    _login(page, mia, "/risk")
    page.wait_for_selector("#whoami")
    assert page.locator("#admin-link").count() == 0  # no link for a member
    assert page.goto("/-/admin").status == 404
    assert page.goto("/-/admin/audit").status == 404
    assert watch.dialogs == []


def test_a_tampered_log_shows_a_red_banner_naming_the_first_bad_entry(
    world: World, tab: tuple[Any, Watch]
) -> None:
    """Last in this module: it edits the log under the running server, as someone with database
    access would."""
    from tallymark.store.schema import audit_log

    store = open_store(Settings(home=world.home))
    try:
        with store.db.write() as conn:
            conn.execute(audit_log.update().where(audit_log.c.seq == 4).values(actor="mallory"))
    finally:
        store.close()
    page, watch = tab
    _login(page, world.keys["root"], "/-/admin/audit")
    banner = page.locator("#verify-banner")
    assert banner.get_attribute("data-ok") == "false"
    text = banner.inner_text()
    assert "Audit log NOT intact" in text and "First bad entry: #4" in text and "entry 4 was edited" in text
    page.screenshot(path=str(world.shots / "audit-broken.png"), full_page=False)
    page.click("#verify-banner a")  # "show it"
    page.wait_for_url(re.compile(r"before=5"))
    first = page.locator("#audit-entries tbody tr").first
    assert first.get_attribute("data-seq") == "4" and "mallory" in first.inner_text()
    assert first.get_attribute("class") == "bad"
    page.screenshot(path=str(world.shots / "audit-bad-entry.png"), full_page=False)
    page.click("#sign-checkpoint")  # refused: nothing is signed over a broken chain
    page.wait_for_selector("#audit-status.error:not([hidden])")
    assert "refusing to sign" in page.locator("#audit-status").inner_text()
    assert watch.dialogs == [] and watch.errors == []
