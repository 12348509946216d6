"""The UI's URLs (DESIGN §4), built in one place so every link is quoted the same way.

>>> project("risk team", "fraud", q="metrics.auc > 0.9", page=None)
'/risk%20team/fraud?q=metrics.auc+%3E+0.9'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

STATIC_PREFIX = "/-/static"
JS_SAFE = "!~*'()"  # what encodeURIComponent leaves as is, besides letters, digits and -_.


def _q(name: str) -> str:
    return quote(name, safe="")


def _query(params: dict[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return ("?" + urlencode(kept, safe=",")) if kept else ""


def home() -> str:
    return "/"


def workspace(ws: str) -> str:
    return f"/{_q(ws)}"


def project(ws: str, proj: str, **params: Any) -> str:
    return f"/{_q(ws)}/{_q(proj)}{_query(params)}"


def experiment(ws: str, proj: str, key: str, tab: str | None = None, **params: Any) -> str:
    return f"/{_q(ws)}/{_q(proj)}/{key}{_query({'tab': tab, **params})}"


def compare(ws: str, proj: str, keys: Iterable[str], **params: Any) -> str:
    return f"/{_q(ws)}/{_q(proj)}/compare{_query({'keys': ','.join(keys), **params})}"


def columns(ws: str, proj: str) -> str:
    """JSON: every parameter, metric and other name of a project (the column picker)."""
    return f"/-/columns/{_q(ws)}/{_q(proj)}"


def series(keys: Iterable[str], name: str, points: int) -> str:
    """JSON: one metric of several experiments, downsampled (what a compare chart draws).

    Quoted the way JavaScript's ``encodeURIComponent`` quotes, so the page's script asks for
    exactly the URL the page preloads."""
    return f"/-/series?name={quote(name, safe=JS_SAFE)}&points={points}&keys={','.join(keys)}"


def asset(key: str, asset_id: int) -> str:
    return f"/api/v1/experiments/{key}/assets/{asset_id}/content"


def static(path: str, version: str = "") -> str:
    """A static file; with ``version`` under ``/-/static/v/HASH/`` so that relative imports between
    our JS modules stay inside the same (immutable, cacheable) version."""
    return f"{STATIC_PREFIX}/v/{version}/{path}" if version else f"{STATIC_PREFIX}/{path}"
