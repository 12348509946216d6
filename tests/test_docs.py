"""Docs that cannot go stale: every setting and CLI command is documented."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from tallymark.cli import app
from tallymark.settings import documented

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "settings.md").read_text()
    missing = [name for name in documented() if f"`{name}`" not in text]
    assert not missing, f"add to docs/settings.md: {missing}"


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
