"""Turn what a custom panel returns into something the compare page can draw without a big library.

Output (JSON for ``static/js/panels.js``):

- ``{"type": "image", "mime": "image/png", "data": BASE64}`` for PNG/JPEG bytes or a ``savefig`` object;
- ``{"type": "chart", "title", "x_label", "y_label", "log_y", "categories"?, "series": [{"name",
  "kind": "line"|"bar"|"scatter", "x": [...], "y": [...]}]}`` for tallymark's spec, Plotly JSON
  (scatter/bar traces) and Vega-Lite (line/bar/point/area marks with x, y and an optional color field);
- ``{"type": "table", "columns", "rows"}`` and ``{"type": "text", "text"}``.

Anything else raises :class:`FigureError` with a message that says what is supported.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

MAX_POINTS = 200_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


class FigureError(ValueError):
    """The panel's return value is not a figure we can draw."""


def to_figure(obj: Any) -> dict[str, Any]:
    if obj is None:
        raise FigureError("the panel returned None; return a figure (see docs/ui.md)")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _image(bytes(obj))
    if hasattr(obj, "savefig"):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight", dpi=110)
        return _image(buf.getvalue())
    if hasattr(obj, "to_plotly_json"):
        obj = obj.to_plotly_json()
    if isinstance(obj, str):
        return {"type": "text", "text": obj}
    if hasattr(obj, "to_dict") and hasattr(obj, "columns") and not isinstance(obj, dict):  # a DataFrame
        columns = [str(c) for c in obj.columns]
        rows = [[_plain(v) for v in row] for row in obj.itertuples(index=False, name=None)]
        return {"type": "table", "columns": columns, "rows": rows[:5000]}
    if isinstance(obj, dict):
        if "columns" in obj and "rows" in obj:
            return {
                "type": "table",
                "columns": [str(c) for c in obj["columns"]],
                "rows": [[_plain(v) for v in r] for r in list(obj["rows"])[:5000]],
            }
        if "series" in obj and obj.get("type") in ("line", "bar", "scatter"):
            return _native(obj)
        if isinstance(obj.get("data"), list):
            return _plotly(obj)
        if "mark" in obj or "vega-lite" in str(obj.get("$schema", "")):
            return _vega_lite(obj)
    raise FigureError(
        f"cannot draw a {type(obj).__name__}: return Plotly JSON, a Vega-Lite spec, PNG bytes, "
        "a matplotlib Figure, {'type': 'line'|'bar'|'scatter', 'series': [...]}, a table or text"
    )


def _image(data: bytes) -> dict[str, Any]:
    if data.startswith(PNG_MAGIC):
        mime = "image/png"
    elif data.startswith(JPEG_MAGIC):
        mime = "image/jpeg"
    else:
        raise FigureError("bytes returned by a panel must be a PNG or JPEG image")
    return {"type": "image", "mime": mime, "data": base64.b64encode(data).decode("ascii")}


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "item"):  # numpy scalars
        return _plain(v.item())
    return str(v)


def _numbers(values: Any, what: str) -> list[float | None]:
    out: list[float | None] = []
    for v in list(values):
        if v is None:
            out.append(None)
            continue
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise FigureError(f"{what} must be numbers, found {type(v).__name__} {v!r:.40}")
        out.append(float(v) if math.isfinite(v) else None)
    return out


def _title(t: Any) -> str:
    if isinstance(t, dict):
        t = t.get("text", "")
    return "" if t is None else str(t)


def _chart(
    series: list[dict[str, Any]], title: Any, x_label: Any, y_label: Any, log_y: bool
) -> dict[str, Any]:
    """Common checks: x either all numbers or all text (categories), lengths equal, size bounded."""
    if not series:
        raise FigureError("the figure has no series")
    total = sum(len(s["y"]) for s in series)
    if total > MAX_POINTS:
        raise FigureError(f"the figure has {total:,} points; panels may draw at most {MAX_POINTS:,}")
    texts = any(isinstance(x, str) for s in series for x in s["x"])
    categories: list[str] | None = None
    if texts:
        categories = list(dict.fromkeys(str(x) for s in series for x in s["x"]))
        index = {c: i for i, c in enumerate(categories)}
        for s in series:
            s["x"] = [float(index[str(x)]) for x in s["x"]]
    for s in series:
        s["x"] = _numbers(s["x"], f"x of {s['name']!r}")
        s["y"] = _numbers(s["y"], f"y of {s['name']!r}")
        if len(s["x"]) != len(s["y"]):
            raise FigureError(f"series {s['name']!r} has {len(s['x'])} x values and {len(s['y'])} y values")
    out: dict[str, Any] = {
        "type": "chart",
        "title": _title(title),
        "x_label": _title(x_label),
        "y_label": _title(y_label),
        "log_y": bool(log_y),
        "series": series,
    }
    if categories is not None:
        out["categories"] = categories
    return out


def _native(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    shared_x = spec.get("x")
    series = []
    for i, s in enumerate(spec["series"]):
        y = list(s.get("y", []))
        x = list(s.get("x", shared_x if shared_x is not None else range(len(y))))
        series.append(
            {"name": str(s.get("name", f"series {i + 1}")), "kind": s.get("kind", kind), "x": x, "y": y}
        )
    return _chart(
        series, spec.get("title"), spec.get("x_label"), spec.get("y_label"), spec.get("log_y", False)
    )


def _plotly(fig: dict[str, Any]) -> dict[str, Any]:
    series = []
    for i, tr in enumerate(fig["data"]):
        if not isinstance(tr, dict):
            raise FigureError("Plotly traces must be objects")
        ttype = tr.get("type", "scatter")
        if ttype in ("scatter", "scattergl"):
            mode = str(tr.get("mode", "lines"))
            kind = "line" if "lines" in mode else "scatter"
        elif ttype == "bar":
            kind = "bar"
        else:
            raise FigureError(
                f"Plotly trace type {ttype!r} is not drawn here; use scatter or bar, or return PNG"
            )
        y = list(tr.get("y", []))
        x = list(tr.get("x", range(len(y))))
        series.append({"name": str(tr.get("name", f"trace {i}")), "kind": kind, "x": x, "y": y})
    layout = fig.get("layout") or {}
    x_axis, y_axis = layout.get("xaxis") or {}, layout.get("yaxis") or {}
    return _chart(
        series, layout.get("title"), x_axis.get("title"), y_axis.get("title"), y_axis.get("type") == "log"
    )


def _vega_lite(spec: dict[str, Any]) -> dict[str, Any]:
    mark = spec.get("mark")
    mark_type = mark.get("type") if isinstance(mark, dict) else mark
    kinds = {"line": "line", "bar": "bar", "point": "scatter", "circle": "scatter", "area": "line"}
    if mark_type not in kinds:
        raise FigureError(f"Vega-Lite mark {mark_type!r} is not drawn here; use line, bar, point or area")
    data = spec.get("data") or {}
    values = data.get("values") if isinstance(data, dict) else None
    if not isinstance(values, list):
        raise FigureError("Vega-Lite specs need inline data: {'data': {'values': [...]}}")
    enc = spec.get("encoding") or {}
    fx = (enc.get("x") or {}).get("field")
    fy = (enc.get("y") or {}).get("field")
    fc = (enc.get("color") or {}).get("field")
    if not fx or not fy:
        raise FigureError("Vega-Lite specs need encoding.x.field and encoding.y.field")
    nominal = (enc.get("x") or {}).get("type") in ("nominal", "ordinal")
    groups: dict[str, dict[str, Any]] = {}
    for row in values:
        if not isinstance(row, dict):
            raise FigureError("Vega-Lite data.values must be objects")
        name = str(row.get(fc)) if fc else fy
        g = groups.setdefault(name, {"name": name, "kind": kinds[mark_type], "x": [], "y": []})
        g["x"].append(str(row.get(fx)) if nominal else row.get(fx))
        g["y"].append(row.get(fy))
    y_enc = enc.get("y") or {}
    log_y = (y_enc.get("scale") or {}).get("type") == "log"
    x_title = (enc.get("x") or {}).get("title", fx)
    return _chart(list(groups.values()), spec.get("title"), x_title, y_enc.get("title", fy), log_y)
