"""The web UI: server-rendered pages at the DESIGN §4 URLs, small scripts, a vendored uPlot.

``create_app`` includes :data:`router` after the API routes. Pages: ``pages_*.py``; the HTML
builder that escapes by default: ``html.py``; scripts and styles: ``static/``.
"""

from __future__ import annotations

from tallymark.server.ui.routes import router

__all__ = ["router"]
