"""The README's "A server for the team", as a new user follows it (issue 9, "Done when").

A real ``tallymark server`` with authentication on, driven only through the CLI and HTTP: the first
admin, a workspace with a member and an approver, a pre-signed link that logs the member into the
UI, the demo logged into that workspace with the member's key (its production request stays
pending), the approver's approval, then ``audit verify`` and ``audit export``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from servers import ServerProcess

ROWS = "20000"


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TALLYMARK_", "COMET_"))}
    return clean | {"COLUMNS": "200", "NO_COLOR": "1"} | extra


def tallymark(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tallymark", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _key(out: str) -> str:
    found = re.findall(r"tm_[0-9A-Za-z]{40}", out)
    assert len(found) == 1, out
    return found[0]


def test_a_new_team_follows_the_readme(tmp_path: Path) -> None:
    home = tmp_path / "server-home"
    at = ("--home", str(home))
    _key(ok(tallymark("admin", "init", *at, "--user", "alice")))
    ok(tallymark("admin", "workspaces", "create", "risk", *at))
    for who in ("dana", "olga"):
        ok(tallymark("admin", "users", "add", who, *at))
    ok(tallymark("admin", "members", "add", "risk", "dana", "--role", "member", *at))
    ok(tallymark("admin", "members", "add", "risk", "olga", "--role", "member", "--approver", *at))
    dana = _key(ok(tallymark("admin", "keys", "create", "--user", "dana", "--expires", "90d", *at)))
    olga = _key(ok(tallymark("admin", "keys", "create", "--user", "olga", *at)))

    with ServerProcess(home, auth=True) as server:
        # The member opens the pre-signed link: logged into the UI, on the workspace's page.
        link = ok(tallymark("admin", "presign", "--user", "dana", "--workspace", "risk",
                            "--public-url", server.url, *at)).strip()  # fmt: skip
        with httpx.Client(base_url=server.url) as browser:
            assert browser.post(link, follow_redirects=False).headers["location"] == "/risk"
            assert browser.get("/risk").status_code == 200
            assert browser.get("/login").text.count("dana") >= 1

        # The demo, logged into the team's workspace with the member's key.
        demo = ok(tallymark("demo", "--rows", ROWS, "--workspace", "risk", timeout=600,
                            TALLYMARK_URL=server.url, TALLYMARK_API_KEY=dana,
                            TALLYMARK_HOME=str(tmp_path / "dana-home")))  # fmt: skip
        pending = re.search(r"Production request #(\d+)", demo)
        assert pending, demo[-3000:]
        request_id = pending.group(1)
        assert f"models approve {request_id} --url {server.url}" in demo

        # Four eyes: the requester cannot approve; the approver can.
        own = tallymark("models", "approve", request_id, "--url", server.url, TALLYMARK_API_KEY=dana,
                        TALLYMARK_HOME=str(tmp_path / "dana-home"))  # fmt: skip
        assert own.returncode != 0 and "dana is not an approver" in own.stderr
        ok(tallymark("models", "approve", request_id, "--url", server.url, "-c", "reviewed",
                     TALLYMARK_API_KEY=olga, TALLYMARK_HOME=str(tmp_path / "olga-home")))  # fmt: skip
        shown = ok(tallymark("models", "show", "risk", "fraud-xgb", "--url", server.url,
                             TALLYMARK_API_KEY=olga, TALLYMARK_HOME=str(tmp_path / "o")))  # fmt: skip
        assert "production" in shown and "olga" in shown
        experiment = re.findall(r"key ([0-9a-f]{32})", demo)[-1]

    # The auditor's side: the chain and its checkpoints verify, and one bundle holds the evidence.
    ok(tallymark("audit", "checkpoint", "--out", str(tmp_path / "kept.checkpoint"), *at))
    verified = ok(tallymark("audit", "verify", "--checkpoint", str(tmp_path / "kept.checkpoint"), *at))
    assert "audit log intact" in verified and " 0 signed" not in verified, verified
    log = ok(tallymark("audit", "log", "--limit", "100000", *at))  # the demo alone writes hundreds
    for action in ("admin.init", "link.issue", "link.use", "model_version.request", "model_version.approve"):
        assert action in log, action
    bundle = tmp_path / "evidence.zip"
    ok(tallymark("audit", "export", experiment, "--out", str(bundle), *at))
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
    assert any("manifest" in n for n in names), names
