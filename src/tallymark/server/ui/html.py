"""A tiny HTML builder that escapes everything it is not told is already HTML.

Pages are built from :func:`el` calls; any ``str`` child or attribute value is escaped, so a stored
``<script>`` in a name, tag or parameter is shown as text and never runs. Only :class:`Markup`
(produced by this module) passes through unescaped.

>>> str(el("a", {"href": "/w?x=1&y=2", "class": "btn"}, "<b>", el("i", None, "ok")))
'<a href="/w?x=1&amp;y=2" class="btn">&lt;b&gt;<i>ok</i></a>'
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

VOID = frozenset({"area", "br", "col", "hr", "img", "input", "link", "meta", "source", "wbr"})
_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9:-]*$")


class Markup(str):
    """A string that is already safe HTML."""

    __slots__ = ()

    def __html__(self) -> Markup:
        return self


def escape(value: Any) -> Markup:
    """``value`` as text: ``<``, ``>``, ``&`` and both quotes escaped (Markup passes as is)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _children(children: Iterable[Any], out: list[str]) -> None:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, Markup):
            out.append(child)
        elif isinstance(child, (str, int, float)):
            out.append(escape(child))
        elif isinstance(child, Iterable):
            _children(child, out)
        else:
            out.append(escape(child))


def _attrs(attrs: Mapping[str, Any] | None) -> str:
    if not attrs:
        return ""
    parts = []
    for name, value in attrs.items():
        if not _NAME_RE.match(name):
            raise ValueError(f"bad attribute name {name!r}")
        if name.lower().startswith("on") or name.lower() == "style":
            raise ValueError(f"inline {name!r} would break the Content-Security-Policy")
        if value is None or value is False:
            continue
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{escape(value)}"')
    return "".join(parts)


def el(tag: str, attrs: Mapping[str, Any] | None = None, *children: Any) -> Markup:
    """``<tag attrs>children</tag>``; children may be str (escaped), Markup, numbers, None, iterables."""
    if not _NAME_RE.match(tag):
        raise ValueError(f"bad tag name {tag!r}")
    if tag in VOID:
        return Markup(f"<{tag}{_attrs(attrs)}>")
    out: list[str] = []
    _children(children, out)
    return Markup(f"<{tag}{_attrs(attrs)}>{''.join(out)}</{tag}>")


def frag(*children: Any) -> Markup:
    """Several children as one piece of HTML."""
    out: list[str] = []
    _children(children, out)
    return Markup("".join(out))


def _finite(value: Any) -> Any:
    """NaN and ±inf as the strings "NaN", "Infinity", "-Infinity" (as the metric API writes them)."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_script(element_id: str, data: Any) -> Markup:
    """Data for the page's scripts, in a ``<script type="application/json">`` block (never executed).

    ``<``, ``>`` and ``&`` are written as ``\\u003c``… so no value can close the element.
    """
    text = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(f'<script type="application/json" id="{escape(element_id)}">{text}</script>')
