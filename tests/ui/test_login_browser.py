"""Login in a real Chromium against a real `tallymark server`: a pre-signed link from the real CLI
logs the user in (cookie HttpOnly, SameSite=Lax, not readable by the page's script), the logout
button (a plain form carrying the CSRF token, under the UI's strict CSP) ends the session, a second
opening of the link shows 410, and the key form logs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from uihelpers import require_browser

from servers import ServerProcess


def _admin(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    out = subprocess.run(
        [sys.executable, "-m", "tallymark", "admin", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_link_login_logout_and_key_login_in_chromium(tmp_path: Path, browser) -> None:
    """Uses the session's Chromium (tests/ui/conftest.py): a second sync_playwright() in the same
    thread is refused while that one is open."""
    require_browser()

    home = tmp_path / "home"
    _admin(home, "init", "--user", "root")
    _admin(home, "users", "add", "dana")
    _admin(home, "workspaces", "create", "risk")
    _admin(home, "members", "add", "risk", "dana", "--role", "member")
    key = _admin(home, "keys", "create", "--user", "dana")
    with ServerProcess(home) as server:
        url = _admin(home, "presign", "--user", "dana", "--path", "/login", "--public-url", server.url)
        context = browser.new_context()
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)  # the link's page: opening it uses nothing
            assert "Continue as dana" in page.locator("#link-form").inner_text()
            assert not [c for c in context.cookies() if c["name"] == "tallymark_session"]
            page.click("#link-form button")
            page.wait_for_url(f"{server.url}/login")
            assert "dana" in page.locator("#logged-in-as").inner_text()
            (cookie,) = [c for c in context.cookies() if c["name"] == "tallymark_session"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
            assert "tallymark_session" not in page.evaluate("document.cookie")
            page.click("#user-badge button")
            page.wait_for_url(f"{server.url}/login")
            assert page.locator("#login-form").count() == 1  # logged out: the form again
            assert not [c for c in context.cookies() if c["name"] == "tallymark_session"]
            again = page.goto(url)
            assert again is not None and again.status == 410
            page.goto(f"{server.url}/login?next=/login")
            page.fill("#key", key)
            page.click("#login-form button")
            page.wait_for_selector("#logged-in-as")
            unexpected = [e for e in errors if "status of 410" not in e]  # the replay, expected
            assert not unexpected, unexpected  # no CSP violation, no script error
        finally:
            context.close()
