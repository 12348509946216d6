"""Secrets never reach the store: command lines, environment variables and git remotes are redacted
at capture (SDK and Comet adapter) and once more when the UI renders them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import tallymark
from tallymark.sdk.autolog.redact import (
    MARK,
    redact_argv,
    redact_env,
    redact_environment,
    redact_text,
    redact_url,
    strip_url_credentials,
)
from tallymark.service.caller import local_admin

TESTER = local_admin("tester")  # the embedded home's local admin: passes every check

TM_KEY = "tm_" + "aB3" * 13 + "x"  # tm_ + 40 base62 characters
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


# ---------------------------------------------------------------- one test per form


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api-key=s3cr3t"], ["--api-key=***"]),
        (["--api-key", "s3cr3t"], ["--api-key", "***"]),
        (["--api_key", "s3cr3t"], ["--api_key", "***"]),
        (["--apiKey=s3cr3t"], ["--apiKey=***"]),
        (["--apikey", "s3cr3t"], ["--apikey", "***"]),
        (["--password", "hunter2"], ["--password", "***"]),
        (["--password=hunter2"], ["--password=***"]),
        (["--db-passwd", "hunter2"], ["--db-passwd", "***"]),
        (["--token", "t0k"], ["--token", "***"]),
        (["--hf-token=hf_abc"], ["--hf-token=***"]),
        (["--access-token", "ya29.x"], ["--access-token", "***"]),
        (["--secret", "x"], ["--secret", "***"]),
        (["--client-secret=x"], ["--client-secret=***"]),
        (["--credentials", "user:pw"], ["--credentials", "***"]),
        (["--key", "k"], ["--key", "***"]),
        (["--http-auth", "user:pw"], ["--http-auth", "***"]),
        (["--ssh-passphrase=x"], ["--ssh-passphrase=***"]),
        (["-password", "x"], ["-password", "***"]),
        (["--aws-secret-access-key", AWS_SECRET], ["--aws-secret-access-key", "***"]),
        (["db.password=hunter2"], ["db.password=***"]),
        (["+trainer.api_key=abc"], ["+trainer.api_key=***"]),
        ([TM_KEY], ["***"]),
        ([f"--header=X-Api: {TM_KEY}"], ["--header=X-Api: ***"]),
        ([AWS_ID], ["***"]),
        (["ASIAIOSFODNN7EXAMPLE"], ["***"]),
        (["https://user:pass@example.com/data.csv"], ["https://***@example.com/data.csv"]),
        (["--data=https://ghp_tok@github.com/x"], ["--data=https://***@github.com/x"]),
        (["https://h/p?access_token=abc&page=2"], ["https://h/p?access_token=***&page=2"]),
        (["https://h/p?token=abc"], ["https://h/p?token=***"]),
        (["https://h/p?key=abc&sig=def"], ["https://h/p?key=***&sig=***"]),
        (
            ["s3://b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12&X-Amz-Date=20260101"],
            ["s3://b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=20260101"],
        ),
        (
            ["https://acct.blob.core.windows.net/c/b?sv=1&signature=zz"],
            ["https://acct.blob.core.windows.net/c/b?sv=1&signature=***"],
        ),
        (["-H", "Authorization: Bearer abcdefghijkl"], ["-H", "Authorization: Bearer ***"]),
    ],
)
def test_argv_form_is_redacted(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(["train.py", *argv]) == ["train.py", *expected]


@pytest.mark.parametrize(
    "argv",
    [
        ["--keep-going"],
        ["--max-depth", "3"],
        ["--key-column", "id"],
        ["--key-file", "/etc/ssl/k.pem"],
        ["--max-tokens", "512"],
        ["--tokenizer", "gpt2"],
        ["--token-limit", "100"],
        ["--monkey", "1"],
        ["--author", "me"],
        ["--learning-rate=0.1"],
        ["--secret"],  # a boolean flag at the end: nothing to hide
        ["--token", "--lr", "0.1"],  # the next argument is a flag, not the token
        ["https://example.com/x?page=2&q=keys"],
        ["ssh://git@host/r.git"],
        ["TOKENIZERS_PARALLELISM=false"],
    ],
)
def test_harmless_arguments_are_kept(argv: list[str]) -> None:
    redacted = redact_argv(argv)
    assert redacted == argv or (argv[0] == "--token" and redacted == ["--token", "--lr", "0.1"])


def test_flag_name_is_kept_and_value_marked() -> None:
    out = redact_argv(["train.py", "--api-key=s3cr3t", "--lr", "0.1"])
    assert out == ["train.py", f"--api-key={MARK}", "--lr", "0.1"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("GITHUB_TOKEN", True),
        ("HF_TOKEN_PATH", True),
        ("DB_PASSWORD", True),
        ("PGPASSWORD", True),
        ("MY_CLIENT_SECRET_V2", True),
        ("TALLYMARK_API_KEY", True),
        ("TOKENIZERS_PARALLELISM", False),
        ("PYTHON_KEYRING_BACKEND", False),
        ("OMP_NUM_THREADS", False),
        ("PWD", False),
    ],
)
def test_env_var_by_name(name: str, secret: bool) -> None:
    out = redact_env({name: "value-1"})
    assert out[name] == (MARK if secret else "value-1")


def test_env_var_values_have_secret_shapes_removed() -> None:
    out = redact_env({"PIP_INDEX_URL": "https://u:p@pypi.example/simple", "X": f"id={AWS_ID}"})
    assert out == {"PIP_INDEX_URL": "https://***@pypi.example/simple", "X": "id=***"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/o/r.git?access_token=abc", "https://github.com/o/r.git?access_token=***"),
        (
            "https://u:tok@github.com/o/r.git?private_token=1&ref=main",
            "https://github.com/o/r.git?private_token=***&ref=main",
        ),
        ("https://u:tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ],
)
def test_git_remote_forms(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


def test_redact_url_and_text_directly() -> None:
    assert redact_url("sftp://me:pw@host/x") == "sftp://me:***@host/x"
    assert redact_text("see https://a:b@h/x and https://h/y?sig=1 then tm_" + "Z" * 40) == (
        "see https://***@h/x and https://h/y?sig=*** then ***"
    )


def test_redact_environment_walks_argv_env_vars_and_strings() -> None:
    data = {
        "argv": ["t.py", "--token", "abc"],
        "orig_argv": ["python", "t.py", "--token=abc"],
        "env_vars": {"HF_TOKEN": "abc"},
        "cloud": {"metadata": {"url": "https://u:p@h/"}},
        "pid": 12,
    }
    out = redact_environment(data)
    assert "abc" not in json.dumps(out) and "u:p" not in json.dumps(out) and out["pid"] == 12


# ---------------------------------------------------------------- through every capture


def _store_of(client):
    app = client.app
    while not hasattr(app, "state") or not hasattr(app.state, "store"):
        app = app.app
    return app.state.store


SECRETS = ("s3cr3t", "hunter2", "t0ken", "zzsig", TM_KEY, AWS_ID, "pw9")


def _argv_with_secrets() -> list[str]:
    return [
        "--api-key=s3cr3t",
        "--password",
        "hunter2",
        "--token",
        "t0ken",
        "--data",
        "https://u:pw9@example.com/d.csv?X-Amz-Signature=zzsig",
        TM_KEY,
        AWS_ID,
        "--lr",
        "0.1",
    ]


def test_sdk_run_stores_and_shows_a_redacted_command_line(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent("""
        import tallymark
        exp = tallymark.Experiment(project_name="p", workspace="w", log_system_metrics=False,
                                   capture_stdout=False)
        exp.end()
        print(exp.get_key())
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script), *_argv_with_secrets()],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    env = tallymark.API().get_experiment_by_key(key).get_environment()
    stored = json.dumps(env)
    for s in SECRETS:
        assert s not in stored, s
    assert "--api-key=***" in env["argv"] and env["argv"][-2:] == ["--lr", "0.1"]
    assert "--api-key=***" in env["orig_argv"]

    from fastapi.testclient import TestClient

    from tallymark.server.app import create_app
    from tallymark.settings import Settings

    with TestClient(create_app(Settings(home=home)), base_url="http://127.0.0.1") as c:
        page = c.get(f"/w/p/{key}?tab=environment")
    assert page.status_code == 200 and "--api-key=***" in page.text
    for s in SECRETS:
        assert s not in page.text, s


def test_ui_redacts_an_environment_stored_before_redaction(client) -> None:
    from tallymark.service import batch, experiments

    store = _store_of(client)
    key = uuid.uuid4().hex
    experiments.create_experiment(store, local_admin("u"), {"key": key, "workspace": "w", "project": "p"})
    raw_env = {"argv": ["train.py", *_argv_with_secrets()], "env_vars": {"HF_TOKEN": "t0ken"}}
    raw_git = {"remote_url": "https://x:pw9@github.com/o/r.git?access_token=s3cr3t", "commit": "ab"}
    batch.apply_batch(
        store,
        TESTER,
        key,
        {
            "batch_id": "b",
            "items": [
                {"kind": "environment", "name": "environment", "data": raw_env},
                {"kind": "command", "name": "command", "data": {"argv": ["x", "--password", "hunter2"]}},
                {"kind": "git", "name": "git", "data": raw_git},
            ],
        },
    )
    for tab in ("environment", "git"):
        page = client.get(f"/w/p/{key}?tab={tab}")
        assert page.status_code == 200
        for s in SECRETS:
            assert s not in page.text, (tab, s)
    assert "access_token=***" in client.get(f"/w/p/{key}?tab=git").text
    # ... and so does the Comet adapter's read API (APIExperiment.get_system_details / get_git_metadata)
    for path in ("/api/rest/v2/experiment/system-details", "/api/rest/v2/experiment/git/metadata"):
        r = client.get(path, params={"experimentKey": key}, headers={"Authorization": "k"})
        assert r.status_code == 200, r.text
        for s in SECRETS:
            assert s not in r.text, (path, s)


def test_comet_adapter_redacts_command_env_and_origin(client) -> None:
    client.headers["Authorization"] = "any-key"  # comet_ml sends its key on every request
    key = uuid.uuid4().hex
    body = {"apiKey": "k", "experimentKey": key, "projectName": "p", "teamName": "w", "offline": False}
    assert client.post("/clientlib/logger/add/run", json=body).status_code == 200
    r = client.post(
        "/clientlib/rest/v2/write/experiment/system-details",
        json={
            "experimentKey": key,
            "command": ["train.py", *_argv_with_secrets()],
            "env": {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "HOME": "/home/u"},
            "pid": 1,
        },
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/rest/v2/write/experiment/git/metadata",
        json={"experimentKey": key, "origin": "https://u:pw9@h/r.git?token=t0ken", "branch": "main"},
    )
    assert r.status_code == 200, r.text
    from tallymark.service import reads

    store = _store_of(client)
    env = reads.get_items(store, TESTER, key, "environment")[-1]["data"]
    git = reads.get_items(store, TESTER, key, "git")[-1]["data"]
    stored = json.dumps([env, git])
    for s in SECRETS:
        assert s not in stored, s
    assert env["env_vars"] == {"AWS_SECRET_ACCESS_KEY": MARK, "HOME": "/home/u"}
    assert git["remote_url"] == "https://h/r.git?token=***"


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_git_remote_with_access_token_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tallymark.sdk.autolog import collect_git

    for name in [n for n in __import__("os").environ if n.startswith("GIT_")]:
        monkeypatch.delenv(name)
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=30)
    subprocess.run(
        ["git", "remote", "add", "origin", "https://gitlab.example/o/r.git?access_token=s3cr3t"],
        cwd=repo,
        check=True,
        timeout=30,
    )
    info = collect_git(repo)
    assert info is not None
    assert info["remote_url"] == "https://gitlab.example/o/r.git?access_token=***"
    assert "s3cr3t" not in json.dumps(info)
