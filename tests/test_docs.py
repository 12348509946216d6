"""Docs that cannot go stale: every setting and CLI command is documented."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from tallymark.cli import app
from tallymark.settings import documented, documented_client

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "settings.md").read_text()
    missing = [name for name in documented() if f"`{name}`" not in text]
    assert not missing, f"add to docs/settings.md: {missing}"


def test_every_client_setting_is_documented():
    """Each client setting has a row of the "Client settings" table naming its variable."""
    text = (DOCS / "settings.md").read_text()
    assert "## Client settings" in text, "docs/settings.md lost its Client settings section"
    section = text.split("## Client settings", 1)[1]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| `")}
    missing = [
        f"{name} ({env})"
        for name, (env, _) in documented_client().items()
        if f"`${env}`" not in rows.get(f"`{name}`", "")
    ]
    assert not missing, f"add to the Client settings table of docs/settings.md: {missing}"
    unknown = sorted(set(rows) - {f"`{name}`" for name in documented_client()})
    assert not unknown, f"docs/settings.md documents client settings that do not exist: {unknown}"


def test_every_cli_command_is_documented():
    text = (DOCS / "cli.md").read_text()

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            full = f"{prefix} {name}".strip()
            if getattr(sub, "commands", None):
                yield from walk(sub, full)
            else:
                yield full

    missing = [c for c in walk(get_command(app), "") if f"tallymark {c}" not in text]
    assert not missing, f"add to docs/cli.md: {missing}"


def test_readme_opens_with_the_two_commands():
    readme = (DOCS.parent / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert first_block.strip().splitlines()[-2:] == ["make demo", "make test"]


def test_docs_list_every_operation_with_its_permission():
    """docs/security.md's operations table is the list in service/operations.py
    (regenerate it with `python scripts/gen_operations_doc.py`)."""
    from tallymark.service.operations import OPERATIONS

    text = (DOCS / "security.md").read_text()
    table = text.split("<!-- operations:start -->", 1)[1].split("<!-- operations:end -->", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in table.splitlines()[2:]
        if line.startswith("| `")
    }
    assert set(rows) == set(OPERATIONS), "run: python scripts/gen_operations_doc.py"
    for name, op in OPERATIONS.items():
        assert f"`{op.permission}`" in rows[name], name
        assert (f"`{op.audit}`" in rows[name]) if op.audit else ("—" in rows[name]), name
