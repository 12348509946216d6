"""Custom panels the UI tests install into ``HOME/panels/`` (also an example of the panels API)."""

from __future__ import annotations

import struct
import zlib

import tallymark


def _metric(exp, name):
    for m in exp.get_metrics_summary():
        if m["name"] == name:
            return m["valueCurrent"]
    return None


@tallymark.panel("precision at k")
def precision_at_k(experiments):
    """Precision of the top-k scored transactions (synthetic, from test precision)."""
    ks = [10, 20, 50, 100, 200]
    series = []
    for e in experiments:
        p = _metric(e, "test_precision") or 0.5
        series.append({"name": e.name, "x": ks, "y": [min(1.0, p * (1.15 - k / 1000)) for k in ks]})
    return {
        "type": "line",
        "title": "precision at k",
        "x_label": "k",
        "y_label": "precision",
        "series": series,
    }


@tallymark.panel("final AUC (Plotly)")
def final_auc_plotly(experiments):
    return {
        "data": [
            {
                "type": "bar",
                "name": "test_auc_roc",
                "x": [e.name for e in experiments],
                "y": [_metric(e, "test_auc_roc") for e in experiments],
            }
        ],
        "layout": {"title": {"text": "test AUC-ROC"}, "yaxis": {"title": "AUC"}},
    }


@tallymark.panel("validation AUC (Vega-Lite)")
def vega(experiments):
    values = []
    for e in experiments:
        for p in e.get_metrics("validation_auc")[::10]:
            values.append({"round": p["step"], "auc": p["metricValue"], "run": e.name})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": values},
        "mark": "line",
        "encoding": {
            "x": {"field": "round", "type": "quantitative"},
            "y": {"field": "auc", "type": "quantitative"},
            "color": {"field": "run", "type": "nominal"},
        },
    }


def _png(width: int = 8, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([40, 105, 208]) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@tallymark.panel("a PNG image")
def png_panel(experiments):
    return _png()


@tallymark.panel("failing panel")
def failing(experiments):
    raise ValueError(f"boom from panel with {len(experiments)} experiments")
