"""Pre-signed login links: single use (410 on replay), expiry, tampering, binding to the user,
local paths only, lifetimes, audit entries; the pages in process, and the whole cookie flow against
a real `tallymark server` process with a link printed by a real `tallymark admin presign`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tallymark.service import audit, presign, sessions
from tallymark.service.errors import Conflict, Invalid, NotFound
from tallymark.service.secret import load_or_create_secret
from tallymark.service.store import now_ms
from tallymark.service.users import disable_user
from tallymark.store.schema import login_links
from test_sessions import ROOT, _client, _store_of, actions, seed

from servers import ServerProcess


def _token(link: presign.IssuedLink) -> str:
    return link.url.rsplit("/login/link/", 1)[1]


def _payload(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(presign._unb64(body))


def test_a_link_logs_its_user_in_once_then_answers_410(store):
    seed(store)
    link = presign.issue_link(store, ROOT, "dana", workspace="risk")
    assert link.url.startswith("http://127.0.0.1:5118/login/link/tml1.") and link.path == "/risk"
    assert _token(link) not in repr(link)
    done = presign.open_link(store, _token(link))
    assert done.path == "/risk" and done.user == "dana"
    caller = sessions.session_caller(store, done.cookie)
    assert caller.name == "dana" and dict(caller.roles) == {"risk": "member"}
    assert done.expires_at - now_ms() > 12 * 3_600_000 - 60_000  # the default 12 h session
    with pytest.raises(presign.LinkGone) as gone:
        presign.open_link(store, _token(link))
    assert gone.value.status == 410 and "used already" in gone.value.message
    assert actions(store)[-4:] == [
        ("root", "link.issue"),
        ("dana", "link.use"),
        ("dana", "session.login"),
        ("anonymous", "link.replay"),
    ]
    entries = audit.entries(store)
    assert all(_token(link) not in str(v) for e in entries for v in e.values())
    assert {e["object_ref"] for e in entries if e["action"].startswith("link.")} == {link.link_id}


def test_a_link_expires(store):
    seed(store)
    link = presign.issue_link(store, ROOT, "dana", expires="5s", session="30m")
    while now_ms() < link.expires_at:  # wait for the real clock to pass the link's expiry
        time.sleep(0.2)
    with pytest.raises(presign.LinkGone, match="expired"):
        presign.open_link(store, _token(link))
    assert actions(store)[-1] == ("anonymous", "link.expired")


def test_an_old_link_signed_with_the_real_secret_is_expired(store):
    """A link issued an hour ago: its row and token agree and verify, only the time is past."""
    seed(store)
    link = presign.issue_link(store, ROOT, "dana")
    payload = _payload(_token(link))
    payload["iat"], payload["exp"] = payload["iat"] - 3_600_000, payload["exp"] - 3_600_000
    with store.db.write() as conn:
        conn.execute(
            update(login_links).where(login_links.c.id == link.link_id).values(expires_at=payload["exp"])
        )
    secret = load_or_create_secret(store.settings.secret_file)
    with pytest.raises(presign.LinkGone, match="expired"):
        presign.open_link(store, presign.sign(secret, payload))


def test_a_tampered_link_is_refused(store):
    seed(store)
    link = presign.issue_link(store, ROOT, "dana")
    token = _token(link)
    secret = load_or_create_secret(store.settings.secret_file)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):  # one character changed, at every position
        other = alphabet[(alphabet.find(ch) + 1) % len(alphabet)] if ch in alphabet else "A"
        assert presign._verified_payload(secret, token[:i] + other + token[i + 1 :]) is None, i
    assert presign._verified_payload(secret, token) is not None
    before = len(audit.entries(store))
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:-1],
        token + "A",
        "x",
        "tml1..",
        "a" * 5000,
    ):
        with pytest.raises(presign.LinkRefused) as refused:
            presign.open_link(store, bad)
        assert refused.value.status == 403
    assert {e["action"] for e in audit.entries(store)[before:]} == {"session.login_failed"}
    assert presign.open_link(store, token).user == "dana"  # the refusals did not use it up


def test_a_link_is_bound_to_its_user(store):
    """Re-signed with the real secret for another user (or path), it still is refused: the issued
    row says whose and where it is."""
    seed(store)
    link = presign.issue_link(store, ROOT, "dana", workspace="risk")
    secret = load_or_create_secret(store.settings.secret_file)
    erin = presign.issue_link(store, ROOT, "erin")
    payload = _payload(_token(link))
    for change in (
        {"uid": _payload(_token(erin))["uid"], "user": "erin"},
        {"user": "erin"},
        {"path": "/elsewhere"},
        {"sess": 1_800_000},
        {"id": erin.link_id},
    ):
        with pytest.raises(presign.LinkRefused, match="not issued for this user"):
            presign.open_link(store, presign.sign(secret, payload | change))
    other_secret = presign.sign(b"\x01" * 32, payload)
    with pytest.raises(presign.LinkRefused, match="not valid"):
        presign.open_link(store, other_secret)
    assert presign.open_link(store, _token(link)).user == "dana"


def test_a_disabled_users_link_is_refused(store):
    seed(store)
    link = presign.issue_link(store, ROOT, "erin")
    disable_user(store, ROOT, "erin")
    with pytest.raises(presign.LinkRefused, match="disabled"):
        presign.open_link(store, _token(link))
    with pytest.raises(Conflict, match="disabled"):
        presign.issue_link(store, ROOT, "erin")


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/x",
        "javascript:alert(1)",
        "evil.example",
        "",
        "/%2f%2fevil.example",
        "/%5Cevil.example",
        "/risk/%0d%0aSet-Cookie:x",
        "/risk/../admin",
        "/risk/./x",
        "/a b",
        "/caf\u00e9",
        "/x\x00",
        "/" + "a" * 2000,
    ],
)
def test_only_local_paths_are_accepted(path):
    with pytest.raises(Invalid):
        presign.check_path(path)


@pytest.mark.parametrize("path", ["/", "/risk", "/risk/fraud?q=metrics.auc+%3E+0.9", "/risk%20team/p"])
def test_local_paths_pass(path):
    assert presign.check_path(path) == path


def test_issuing_checks_lifetimes_workspace_and_admin(store):
    seed(store)
    for expires, session in (("4s", "12h"), ("6m", "12h"), ("5m", "29m"), ("5m", "13h"), ("soon", "12h")):
        with pytest.raises(Invalid):
            presign.issue_link(store, ROOT, "dana", expires=expires, session=session)
    assert presign.issue_link(store, ROOT, "dana", expires="5s", session="30m").session_ms == 1_800_000
    with pytest.raises(Invalid, match="inside workspace"):
        presign.issue_link(store, ROOT, "dana", workspace="risk", path="/other")
    with pytest.raises(NotFound, match="no member"):
        presign.issue_link(store, ROOT, "erin", workspace="risk")
    with pytest.raises(NotFound):
        presign.issue_link(store, ROOT, "nobody")
    dana = sessions.session_caller(
        store, presign.open_link(store, _token(presign.issue_link(store, ROOT, "dana"))).cookie
    )
    from tallymark.service.errors import Forbidden

    with pytest.raises(Forbidden):
        presign.issue_link(store, dana, "erin")


# --- the pages, in process --------------------------------------------------------------------


def test_link_page_sets_the_cookie_redirects_and_refuses_a_replay(tmp_path):
    c, _, _ = _client(tmp_path)
    with c:
        store = _store_of(c)
        link = presign.issue_link(store, ROOT, "dana", path="/risk")
        assert c.head(f"/login/link/{_token(link)}").status_code == 405  # a HEAD (link preview) uses nothing
        for _ in range(2):  # a GET (a preview, a prefetch) shows who the link is for and uses nothing
            shown = c.get(f"/login/link/{_token(link)}", follow_redirects=False)
            assert shown.status_code == 200 and "Continue as dana" in shown.text
            assert "set-cookie" not in shown.headers and shown.headers["cache-control"] == "no-store"
        r = c.post(f"/login/link/{_token(link)}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/risk"
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith(sessions.COOKIE_NAME) and "httponly" in cookie and "samesite=lax" in cookie
        assert "You are logged in as" in c.get("/login").text
        again = c.get(f"/login/link/{_token(link)}", follow_redirects=False)
        assert again.status_code == 410 and "used already" in again.text and "set-cookie" not in again.headers
        replay = c.post(f"/login/link/{_token(link)}", follow_redirects=False)
        assert replay.status_code == 410 and "set-cookie" not in replay.headers
        assert c.get("/login/link/tml1.abc.def", follow_redirects=False).status_code == 403
        assert c.post("/login/link/tml1.abc.def", follow_redirects=False).status_code == 403


# --- a real server process and the real CLI ---------------------------------------------------


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")}
    return subprocess.run(
        [sys.executable, "-m", "tallymark", "admin", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cookie_flow_against_a_real_server(tmp_path):
    home = tmp_path / "home"
    assert _cli("init", "--user", "root", home=home).returncode == 0
    for args in (("users", "add", "dana"), ("workspaces", "create", "risk")):
        assert _cli(*args, home=home).returncode == 0
    assert _cli("members", "add", "risk", "dana", "--role", "member", home=home).returncode == 0
    with ServerProcess(home) as server:
        out = _cli("presign", "--user", "dana", "--workspace", "risk", "--public-url", server.url, home=home)
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip()
        assert url.startswith(f"{server.url}/login/link/tml1.")
        with httpx.Client(base_url=server.url) as browser:
            assert browser.get(url, follow_redirects=False).status_code == 200  # the page with the button
            r = browser.post(url, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/risk"
            set_cookie = r.headers["set-cookie"].lower()
            assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/" in set_cookie
            assert "secure" not in set_cookie  # the public URL is http
            page = browser.get("/login")
            assert "You are logged in as" in page.text and "dana" in page.text
            csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            assert browser.get(url, follow_redirects=False).status_code == 410  # seen, not audited
            assert browser.post(url, follow_redirects=False).status_code == 410  # a replay: audited
            assert browser.post("/logout", follow_redirects=False).status_code == 403
            bye = browser.post("/logout", data={"csrf": csrf}, follow_redirects=False)
            assert bye.status_code == 303
            assert "You are logged in as" not in browser.get("/login").text
        log = server.log.read_text()
    assert url.rsplit("/", 1)[1] not in log
    verify = subprocess.run(
        [sys.executable, "-m", "tallymark", "audit", "log", "--home", str(home)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TALLYMARK_")} | {"COLUMNS": "400"},
        timeout=60,
    )
    for action in ("link.issue", "link.use", "session.login", "link.replay", "session.logout"):
        assert action in verify.stdout, (action, verify.stdout[-2000:])


def test_concurrent_openings_of_one_link_log_in_exactly_once(store):
    from concurrent.futures import ThreadPoolExecutor

    seed(store)
    link = presign.issue_link(store, ROOT, "dana")

    def attempt(_: int) -> str:
        try:
            presign.open_link(store, _token(link))
            return "in"
        except presign.LinkGone:
            return "gone"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == ["gone"] * 7 + ["in"]
    acts = [a for _, a in actions(store)]
    assert acts.count("link.use") == 1 and acts.count("link.replay") == 7
    assert audit.verify(store).problem is None  # the chain stayed one chain
