"""UI sessions: key login, cookie attributes, expiry, logout, revocation on disable, CSRF tokens.

Service functions on a real store (SQLite and PostgreSQL), and the real pages through an in-process
client over a store seeded with users (the crosssite Host check needs the loopback base URL).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tallymark.service import audit, sessions
from tallymark.service.apikeys import create_key
from tallymark.service.bootstrap import init_admin
from tallymark.service.caller import local_admin
from tallymark.service.memberships import add_member
from tallymark.service.secret import SecretError, load_or_create_secret
from tallymark.service.store import open_store
from tallymark.service.users import add_user, disable_user
from tallymark.service.workspaces import create_workspace
from tallymark.settings import Settings
from tallymark.store.schema import sessions as sessions_table

ROOT = local_admin("root")


def seed(store) -> dict[str, str]:
    """root (server admin), dana (member of risk) and erin; returns their API keys."""
    keys = {"root": init_admin(store, "root").secret}
    create_workspace(store, ROOT, "risk")
    for name in ("dana", "erin"):
        add_user(store, ROOT, name)
        keys[name] = create_key(store, ROOT, name).secret
    add_member(store, ROOT, "risk", "dana", "member")
    return keys


def actions(store) -> list[tuple[str, str]]:
    return [(e["actor"], e["action"]) for e in audit.entries(store)]


def test_key_login_makes_a_session_of_that_user_and_is_audited(store):
    keys = seed(store)
    before = len(audit.entries(store))
    cookie, session = sessions.login_with_key(store, keys["dana"])
    assert cookie.startswith("tms_") and len(cookie) == 47
    assert session.caller.name == "dana" and session.caller.auth_method == "session"
    assert dict(session.caller.roles) == {"risk": "member"}
    assert sessions.session_caller(store, cookie).name == "dana"
    assert actions(store)[before:] == [("dana", "session.login")]
    with store.db.read() as conn:
        stored = conn.execute(select(sessions_table)).one()
    assert stored.token_sha256 == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in repr(session) and session.csrf not in repr(session)


def test_an_invalid_key_is_refused_and_audited_without_the_key(store):
    keys = seed(store)
    wrong = keys["dana"][:-1] + ("A" if keys["dana"][-1] != "A" else "B")
    before = len(audit.entries(store))
    assert sessions.login_with_key(store, wrong) is None
    assert sessions.login_with_key(store, "not a key") is None
    new = audit.entries(store)[before:]
    assert [(e["actor"], e["action"]) for e in new] == [("anonymous", "session.login_failed")] * 2
    assert not any(wrong in str(v) for e in new for v in e.values())


def test_expired_revoked_malformed_cookies_give_no_caller(store):
    keys = seed(store)
    cookie, session = sessions.login_with_key(store, keys["dana"])
    assert sessions.open_session(store, cookie, now=session.expires_at - 1) is not None
    assert sessions.open_session(store, cookie, now=session.expires_at) is None  # over at that instant
    for bad in (None, "", "tms_short", cookie + "x", cookie.replace("tms_", "tmx_"), "tms_" + "A" * 43):
        assert sessions.session_caller(store, bad) is None
    assert sessions.revoke_session(store, cookie) is True
    assert sessions.session_caller(store, cookie) is None
    assert sessions.revoke_session(store, cookie) is False
    assert actions(store)[-1] == ("dana", "session.logout")


def test_disabling_a_user_ends_their_sessions(store):
    keys = seed(store)
    dana, _ = sessions.login_with_key(store, keys["dana"])
    erin, _ = sessions.login_with_key(store, keys["erin"])
    out = disable_user(store, ROOT, "dana")
    assert out["endedSessions"] == 1
    assert sessions.session_caller(store, dana) is None
    assert sessions.session_caller(store, erin).name == "erin"
    with store.db.read() as conn:
        revoked = dict(conn.execute(select(sessions_table.c.user_id, sessions_table.c.revoked_at)).all())
    assert sum(v is not None for v in revoked.values()) == 1


def test_an_admin_revokes_a_users_sessions(store):
    keys = seed(store)
    a, _ = sessions.login_with_key(store, keys["dana"])
    b, _ = sessions.login_with_key(store, keys["dana"])
    assert sessions.revoke_user_sessions(store, ROOT, "dana") == 2
    assert sessions.session_caller(store, a) is None and sessions.session_caller(store, b) is None
    assert actions(store)[-1] == ("root", "session.revoke")
    assert sessions.revoke_user_sessions(store, ROOT, "dana") == 0
    dana = sessions.session_caller(store, sessions.login_with_key(store, keys["dana"])[0])
    from tallymark.service.errors import Forbidden

    with pytest.raises(Forbidden):
        sessions.revoke_user_sessions(store, dana, "erin")


def test_csrf_token_is_the_documented_hmac_and_bound_to_its_session(store):
    keys = seed(store)
    a, sa = sessions.login_with_key(store, keys["dana"])
    b, sb = sessions.login_with_key(store, keys["dana"])
    secret = bytes.fromhex(store.settings.secret_file.read_text().strip())
    assert sa.csrf == hmac.new(secret, b"csrf:" + a.encode(), hashlib.sha256).hexdigest()
    assert sessions.check_csrf(sa, sa.csrf)
    assert not sessions.check_csrf(sa, sb.csrf)  # another session's token
    for bad in (None, "", sa.csrf[:-1], sa.csrf.upper(), sa.csrf + "0", "é" * 64):
        assert not sessions.check_csrf(sa, bad)


def test_the_secret_file_is_private_and_refused_when_readable(tmp_path):
    path = tmp_path / "h" / "server.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first
    os.chmod(path, 0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        load_or_create_secret(path)
    os.chmod(path, 0o600)
    path.write_text("short\n")
    with pytest.raises(SecretError, match="64 hex"):
        load_or_create_secret(path)


# --- the pages, in process --------------------------------------------------------------------


def _client(tmp_path: Path, **settings_kw: object) -> tuple[TestClient, dict[str, str], object]:
    from tallymark.server.app import create_app

    settings = Settings(home=tmp_path / "srv", **settings_kw)
    seeding = open_store(settings)
    try:
        keys = seed(seeding)
    finally:
        seeding.close()
    return TestClient(create_app(settings), base_url="http://127.0.0.1"), keys, settings


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    c, keys, _ = _client(tmp_path)
    with c:
        yield c, keys


def _store_of(c: TestClient):
    return (
        c.app.app.app.app.state.store
    )  # RequestId → CrossSite → Limits → Dispatch (which exposes the state)


def test_login_page_is_a_form_without_inline_script(ui):
    c, _ = ui
    r = c.get("/login?next=/risk")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert 'type="password"' in html and 'name="key"' in html and 'value="/risk"' in html
    assert "<script>" not in html and " on" not in html.split("<body", 1)[1].split(">", 1)[0]
    assert 'value="//evil.example"' not in c.get("/login?next=//evil.example").text


def test_login_with_a_valid_key_sets_the_session_cookie(ui):
    c, keys = ui
    r = c.post("/login", data={"key": keys["dana"], "next": "/risk"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/risk"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{sessions.COOKIE_NAME}=tms_")
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attrs and "secure" not in attrs
    assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    assert 43000 <= int(cookie.lower().split("max-age=")[1].split(";")[0]) <= 43200
    page = c.get("/login")  # the client keeps the cookie
    assert "You are logged in as" in page.text and "dana" in page.text


def test_login_with_an_invalid_key_is_401_and_sets_no_cookie(ui):
    c, keys = ui
    before = len(audit.entries(_store_of(c)))
    r = c.post("/login", data={"key": keys["dana"][:-2] + "zz", "next": "/risk"}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert "not valid" in r.text
    assert [e["action"] for e in audit.entries(_store_of(c))[before:]] == ["session.login_failed"]
    assert c.post("/login", data={}, follow_redirects=False).status_code == 401


def test_login_never_redirects_off_site(ui):
    c, keys = ui
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example", "evil"):
        r = c.post("/login", data={"key": keys["dana"], "next": target}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_cookie_is_secure_when_the_public_url_is_https(tmp_path):
    c, keys, _ = _client(tmp_path, public_url="https://tm.example.com")
    with c:
        r = c.post("/login", data={"key": keys["dana"]}, follow_redirects=False)
    assert r.status_code == 303 and "; secure" in r.headers["set-cookie"].lower()


def test_logout_needs_the_csrf_token_and_ends_the_session(ui):
    c, keys = ui
    c.post("/login", data={"key": keys["dana"]}, follow_redirects=False)
    cookie = c.cookies[sessions.COOKIE_NAME]
    store = _store_of(c)
    csrf = sessions.open_session(store, cookie).csrf
    assert f'value="{csrf}"' in c.get("/login").text  # the logout form carries it
    assert c.post("/logout", follow_redirects=False).status_code == 403
    assert c.post("/logout", data={"csrf": "0" * 64}, follow_redirects=False).status_code == 403
    assert sessions.session_caller(store, cookie) is not None
    r = c.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (
        f"{sessions.COOKIE_NAME}=" in r.headers["set-cookie"]
        and "max-age=0" in r.headers["set-cookie"].lower()
    )
    assert sessions.session_caller(store, cookie) is None
    assert ("dana", "session.logout") in actions(store)


def test_logout_by_header_token(ui):
    c, keys = ui
    c.post("/login", data={"key": keys["erin"]}, follow_redirects=False)
    cookie = c.cookies[sessions.COOKIE_NAME]
    store = _store_of(c)
    csrf = sessions.open_session(store, cookie).csrf
    r = c.post("/logout", headers={sessions.CSRF_HEADER: csrf}, follow_redirects=False)
    assert r.status_code == 303 and sessions.session_caller(store, cookie) is None


def test_a_cross_site_login_post_is_refused(ui):
    c, keys = ui
    r = c.post(
        "/login",
        data={"key": keys["dana"]},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
