"""Regenerate docs/cli.md from the CLI's own --help (run: .venv/bin/python scripts/gen_cli_docs.py)."""

from __future__ import annotations

import os
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from tallymark.cli import app

OUTPUT = (
    'Stored text (names, tags, parameters, metadata, comments, paths, error messages that quote them) is printed through `tallymark.termsafe`: control characters and the bytes that start terminal escape sequences (C0 except where a layout needs a newline, DEL, C1, so no OSC, CSI or DCS sequence can start) are shown escaped as `\\x1b`, `\\x07`, `\\x9b` …, bidi overrides as `\\u202e`, and stored text is never read as Rich markup (`[bold red]`, `[link=…]` print as typed). A clipboard write (OSC 52), a disguised hyperlink (OSC 8), a window title (OSC 0) or a screen clear (`CSI 2J`) stored by someone else cannot act on your terminal.'
)

os.environ["COLUMNS"] = "100"
os.environ["NO_COLOR"] = "1"


def commands(cmd, prefix=()):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from commands(sub, (*prefix, name))


def main() -> None:
    runner = CliRunner()
    out = ["# Command line reference", "", "Generated from `--help` by `scripts/gen_cli_docs.py`.", "", OUTPUT, ""]
    for path in commands(get_command(app)):
        res = runner.invoke(app, [*path, "--help"], prog_name="tallymark", env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
        title = " ".join(("tallymark", *path))
        out += [f"## `{title}`", "", "```text", res.output.rstrip(), "```", ""]
    Path(__file__).resolve().parent.parent.joinpath("docs", "cli.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
