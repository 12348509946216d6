"""No stored text drives the terminal: every CLI command that prints names, tags, metadata, comments or
paths escapes control characters and escape sequences and never lets stored text act as Rich markup.

The store refuses control characters in names and tags today, but values, metadata and comments
accept them, older stores hold what older versions accepted, and a ``--url`` server may answer
anything. So the hostile text is written in two ways: through the SDK where the store takes it, and
straight into the SQLite file for the columns it refuses (standing in for such data).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import tallymark
from tallymark import Artifact
from tallymark.termsafe import clean, markup

SEQUENCES = {
    "osc52-clipboard": "\x1b]52;c;aGFja2Vk\x07",
    "osc8-hyperlink": "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "osc0-title": "\x1b]0;pwned\x07",
    "csi-2J-clear": "\x1b[2J\x1b[H",
    "c1-8bit": "\x9b2J\x9d0;title\x9c\x90q\x9c",
    "dcs": "\x1bP1$qm\x1b\\",
    "carriage-return": "archived\rproduction",
    "rich-markup": "[bold red]RED[/][link=https://evil.example]x[/link]",
}
# C0 except newline, DEL and C1: none of these may reach the terminal.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
QUIET = {
    "log_code": False,
    "log_env": False,
    "log_git": False,
    "log_system_metrics": False,
    "capture_stdout": False,
}


def test_clean_escapes_every_control_character_visibly() -> None:
    assert clean("a\x1b]52;c;x\x07b") == "a\\x1b]52;c;x\\x07b"
    assert clean("\x9b2J") == "\\x9b2J"
    assert clean("a\nb\tc") == "a\\x0ab\\x09c"
    assert clean("a\nb\tc\r", multiline=True) == "a\nb\tc\\x0d"
    assert clean("abc\u202edcba") == "abc\\u202edcba"
    assert clean("naïve 数据 🚀") == "naïve 数据 🚀"
    assert clean(12.5) == "12.5"
    assert markup("[bold]x[/]") == "\\[bold]x\\[/]"
    assert not FORBIDDEN.search(clean("".join(chr(i) for i in range(0x00, 0xA0))))


def _store_hostile(home: Path, tmp_path: Path, p: str) -> dict[str, Any]:
    """Two experiments, an artifact (produced and consumed), a registered model with a pending
    request and a history entry; every text field then carries ``p``."""
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as e1:
        e1.set_name("first")
        e1.add_tag("tag")
        e1.log_parameters({"lr": 0.1, "label": p})
        e1.log_metric("loss", 0.5, step=1)
        e1.log_other("note", p)
        art = Artifact("data", metadata={"source": p}, aliases=["raw"], version_tags=["v"])
        art.add(data).add_remote("s3://bucket/data.csv", logical_path="remote.csv")
        e1.log_artifact(art)
        e1.log_model("m", data, metadata={"why": p})
        e1.register_model("m", description=p)
        k1 = e1.get_key()
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as e2:
        e2.set_name("second")
        e2.log_parameters({"lr": 0.2, "label": "other"})
        e2.log_metric("loss", 0.4, step=1)
        e2.get_artifact("data", "raw")
        k2 = e2.get_key()
    from tallymark.sdk.transport import LocalTransport

    t = LocalTransport(home)
    t.call("request_status", workspace="w", name="m", version="1.0.0", body={"status": "staging"})
    req = t.call(
        "request_status",
        workspace="w",
        name="m",
        version="1.0.0",
        body={"status": "production", "comment": p},
    )
    t.close()

    db = sqlite3.connect(home / "tallymark.db")
    with db:
        for sql, args in [
            ("UPDATE experiments SET name = name || ?, user = user || ?", (p, p)),
            ("UPDATE projects SET name = name || ?", (p,)),
            ("UPDATE tags SET tag = tag || ?", (p,)),
            ("UPDATE params SET name = name || ?", (p,)),
            ("UPDATE others SET name = name || ?", (p,)),
            ("UPDATE metric_summaries SET name = name || ?", (p,)),
            ("UPDATE metric_chunks SET name = name || ?", (p,)),
            ("UPDATE artifacts SET name = name || ?, artifact_type = ?, created_by = ?", (p, p, p)),
            ("UPDATE artifact_versions SET tags_json = ?, created_by = ?", (json.dumps([p]), p)),
            ("UPDATE artifact_aliases SET alias = alias || ?", (p,)),
            # Local files keep a clean path, so `artifacts download` gets as far as listing remotes.
            (
                "UPDATE files SET logical_path = logical_path || ?, uri = uri || ? WHERE uri IS NOT NULL",
                (p, p),
            ),
            ("UPDATE files SET logical_path = logical_path || ? WHERE owner_kind = 'model'", (p,)),
            ("UPDATE experiment_models SET metadata_json = ?", (json.dumps({p: p}),)),
            ("UPDATE registered_models SET name = name || ?, description = ?", (p, p)),
            ("UPDATE model_versions SET description = ?, tags_json = ?", (p, json.dumps([p]))),
            ("UPDATE status_requests SET requested_by = requested_by || ?", (p,)),
            ("UPDATE model_transitions SET actor = actor || ?, comment = ?", (p, p)),
        ]:
            db.execute(sql, args)
    db.close()
    return {"k1": k1, "k2": k2, "artifact": "data" + p, "model": "m" + p, "request": req["id"]}


@pytest.fixture
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide, and never a terminal: so every byte of output is the data's, not Rich's styling, and no
    # cell is cut short.
    from tallymark import cli, cli_registry

    out = Console(width=1000, emoji=False, force_terminal=False, color_system=None)
    err = Console(width=1000, emoji=False, force_terminal=False, color_system=None, stderr=True)
    for module in (cli, cli_registry):
        monkeypatch.setattr(module, "console", out)
        monkeypatch.setattr(module, "err", err)


@pytest.mark.parametrize("sequence", list(SEQUENCES), ids=list(SEQUENCES))
def test_no_stored_sequence_reaches_the_terminal(
    home: Path, tmp_path: Path, wide_consoles: None, sequence: str
) -> None:
    from tallymark.cli import app

    p = f"<{SEQUENCES[sequence]}>"
    s = _store_hostile(home, tmp_path, p)
    art, model = s["artifact"], s["model"]
    commands = [
        ["experiments", "list", "w"],
        ["experiments", "list", "w", "-m", "loss" + p],
        ["experiments", "show", s["k1"]],
        ["experiments", "compare", s["k1"], s["k2"], "--all"],
        ["artifacts", "list", "w"],
        ["artifacts", "show", "w", art],
        ["artifacts", "show", "w", art, "1.0.0"],
        ["artifacts", "download", "w", art, str(tmp_path / "dl")],
        ["lineage", f"experiment:{s['k1']}"],
        ["lineage", f"artifact:w/{art}:1.0.0"],
        ["lineage", f"model:w/{model}:1.0.0"],
        ["models", "list", "w"],
        ["models", "show", "w", model],
        ["models", "approve", str(s["request"]), "--comment", "ok"],
        ["experiments", "show", "0" * 31 + p],  # an error message quoting what it was given (exit 1)
    ]
    runner = CliRunner()
    shown = ""
    for args in commands:
        result = runner.invoke(app, [*args, "--home", str(home)], env={"TALLYMARK_USER": "bob"})
        output = result.stdout + (result.stderr or "")
        expected = 1 if args[-1].endswith(p) and args[0] == "experiments" and args[1] == "show" else 0
        assert result.exit_code == expected, (args, result.exception, output[-2000:])
        bad = FORBIDDEN.search(output)
        assert bad is None, (args, repr(bad.group(0)) if bad else None, output[-2000:])
        # Rich would have turned "<[bold red]RED[/]…" into "<RED…": the markup was interpreted.
        assert "<RED" not in output, (args, output[-2000:])
        shown += output
    # The text is shown, visibly escaped, not silently dropped; markup stays literal text.
    visible = clean(p)
    assert visible in shown
    if sequence == "rich-markup":
        assert "[bold red]RED[/][link=https://evil.example]x[/link]" in shown


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
def test_sdk_warnings_print_quoted_text_escaped(sequence, capfd):
    """The SDK's warnings quote what the server or store said, which quotes what the user logged
    (a refused parameter's name, say): nothing of it may reach the training terminal as a sequence."""
    from tallymark.sdk.notice import warn

    warn(f"the server refused a batch: parameter {SEQUENCES[sequence]!s} is not a name")
    err = capfd.readouterr().err
    assert err.startswith("tallymark: the server refused a batch") and err.endswith("\n")
    assert FORBIDDEN.search(err) is None, repr(err)
