"""Regenerate the operations table of docs/security.md from src/tallymark/service/operations.py."""

import re
from pathlib import Path

from tallymark.service.operations import OPERATIONS

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
START, END = "<!-- operations:start -->\n", "<!-- operations:end -->"


def table() -> str:
    rows = ["| operation | permission | audit action | what |", "| --- | --- | --- | --- |"]
    for op in OPERATIONS.values():
        perm = f"`{op.permission}`" + (" + approver" if op.approver else "")
        audit = f"`{op.audit}`" if op.audit else "—"
        rows.append(f"| `{op.name}` | {perm} | {audit} | {op.summary} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    text = DOC.read_text()
    DOC.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), START + table() + END, text, flags=re.S))
