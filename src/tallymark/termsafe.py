"""Stored text made safe to print on a terminal: no escape sequence, no control character, no markup.

Names, tags, metadata, comments and file names come from whoever logged them. Printed raw, an OSC 52
sequence (``ESC ] 52 ; c ; … BEL``) writes the reader's clipboard, OSC 8 plants a hyperlink whose text
lies about its target, OSC 0 retitles the window, ``CSI 2J`` wipes the screen and a carriage return
overwrites what the line said (``status=archived\\rstatus=production``). Rich adds one more layer: a
stored ``[link=…]`` or ``[bold red]`` is markup when interpolated into a string Rich renders.

So every CLI command passes stored text through :func:`clean` (plain output) or :func:`markup`
(anything Rich renders: ``console.print`` strings, table cells, tree labels, rule titles). Control
characters are **escaped, not dropped**: ``ESC`` becomes the four visible characters ``\\x1b``, so the
reader sees that a name carries an escape sequence instead of seeing a harmless-looking name.

Escaped: C0 controls (U+0000–U+001F) except newline and tab when ``multiline`` is true, DEL, C1
controls (U+0080–U+009F: the 8-bit CSI, OSC, DCS … introducers), Unicode line and paragraph
separators, and bidirectional overrides/isolates (which make text display in another order than it
is stored). Everything else, accents and CJK and emoji included, is printed as is. Without ESC, BEL
and the C1 introducers no sequence can start, so the printable remainder of an OSC/CSI/DCS payload is
just text.

Example::

    from tallymark.termsafe import markup
    console.print(f"[bold]{markup(name)}[/]")
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["clean", "markup"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_SINGLE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(value: Any, multiline: bool = False) -> str:
    """``value`` as text with every control character and escape-sequence introducer made visible.

    ``multiline`` keeps newlines and tabs (comments, descriptions); by default they are escaped too,
    so a name or a table cell cannot forge extra lines of output.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_MULTILINE if multiline else _UNSAFE_SINGLE_LINE
    return pattern.sub(_escape, text)


def markup(value: Any, multiline: bool = False) -> str:
    """:func:`clean`, then escaped for Rich markup: safe to interpolate into anything Rich renders."""
    from rich.markup import escape

    return escape(clean(value, multiline))
