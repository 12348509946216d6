"""The UI with authentication on, in a real Chromium against a real ``tallymark server``: the header
says who is logged in and their role in the page's workspace, the four-eyes buttons are shown only
to approvers, and an approver's click approves through the session cookie plus its CSRF token (the
same write without the token is refused: tests/test_auth.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from uihelpers import require_browser

from tallymark.service import apikeys, experiments, memberships, registry, users, workspaces
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.store import open_store
from tallymark.settings import Settings

from servers import ServerProcess

ADMIN = local_admin("alice")  # the embedded home's local admin, as named by TALLYMARK_USER


def _seed(home: Path) -> dict[str, str]:
    store = open_store(Settings(home=home))
    try:
        init_admin(store, "root")
        admin = local_admin("root")
        workspaces.create_workspace(store, admin, "risk")
        keys = {}
        for name, approver in (("mia", False), ("apu", True)):
            users.add_user(store, admin, name)
            memberships.add_member(store, admin, "risk", name, "member", approver=approver)
            keys[name] = apikeys.create_key(store, admin, name).secret
        train = uuid.uuid4().hex
        experiments.create_experiment(
            store, local_admin("mia"), {"key": train, "workspace": "risk", "project": "fraud"}
        )
        sha, size = store.blobs.put(iter([b'{"trees": 1}']), 1 << 30)
        model = {"name": "fraud-xgb", "files": [{"logical_path": "m.json", "sha256": sha, "size": size}]}
        registry.log_model(store, ADMIN, train, model)
        spec = {"experiment_key": train, "experiment_model": "fraud-xgb"}
        mv = registry.register_model(store, local_admin("mia"), "risk", "fraud-xgb", spec)
        registry.request_status(
            store, local_admin("mia"), "risk", "fraud-xgb", mv["version"], {"status": "production"}
        )
        return keys
    finally:
        store.close()


def _login(page, base: str, key: str) -> None:
    page.goto(f"{base}/login?next=/risk/models/fraud-xgb")
    page.fill("#key", key)
    page.click("#login-form button")
    page.wait_for_url(f"{base}/risk/models/fraud-xgb")
    page.wait_for_selector("#whoami")


def _badge(page) -> str:
    return " ".join(page.locator("#whoami").inner_text().split())


def test_header_badge_and_approve_buttons_follow_the_callers_role(tmp_path: Path, browser) -> None:
    require_browser()
    home = tmp_path / "home"
    home.mkdir()
    keys = _seed(home)
    with ServerProcess(home, auth=True) as server:
        base = server.url
        context = browser.new_context()
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            _login(page, base, keys["mia"])  # the requester, no approver flag
            assert _badge(page) == "mia · member Log out"
            assert page.locator("#acting-as").is_hidden()  # the --no-auth identity field
            assert page.locator("td.decide button[data-action=approve]").is_hidden()
            assert "only an approver of risk" in page.locator("td.decide").inner_text()
            page.click("#whoami button")  # log out
            page.wait_for_url(f"{base}/login")

            _login(page, base, keys["apu"])
            assert _badge(page) == "apu · member, approver Log out"
            approve = page.locator("td.decide button[data-action=approve]")
            assert approve.is_visible()
            approve.click()  # registry.js: fetch with the session cookie and X-Tallymark-CSRF
            page.wait_for_selector("text=production")
            assert not errors, errors
        finally:
            context.close()

    store = open_store(Settings(home=home))
    try:
        (v,) = registry.find_versions(store, ADMIN, "risk", "fraud-xgb")
        assert v["status"] == "production"
        (req,) = registry.list_requests(store, ADMIN, "risk", "fraud-xgb")
        assert (req["requestedBy"], req["decidedBy"]) == ("mia", "apu")
    finally:
        store.close()
