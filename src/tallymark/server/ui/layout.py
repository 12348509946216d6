"""The page shell every UI page shares: head, header with breadcrumbs, security headers.

Pages carry no inline script or style: a strict Content-Security-Policy (``script-src 'self'``)
means that even an escaping bug could not run injected script. Data for the page's scripts travels
in ``<script type="application/json">`` blocks (see :func:`tallymark.server.ui.html.json_script`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse

from tallymark import __version__
from tallymark.server.ui import assets, urls
from tallymark.server.ui.html import Markup, el, frag

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

Crumb = tuple[str, str | None]  # (label, href or None for the current page)


def _crumbs(crumbs: Sequence[Crumb]) -> Markup:
    items = []
    for label, href in crumbs:
        items.append(el("li", None, el("a", {"href": href}, label) if href else el("span", None, label)))
    return el("ol", {"class": "crumbs"}, items)


def page(
    title: str,
    crumbs: Sequence[Crumb],
    body: Any,
    *,
    page_id: str,
    charts: bool = False,
    preload: Sequence[str] = (),
    status_code: int = 200,
) -> HTMLResponse:
    """A complete HTML page; ``page_id`` selects what ``static/js/main.js`` wires up on it;
    ``preload``: data URLs the page's scripts will fetch first (fetched while they load)."""
    v = assets.version()
    head = [
        el("meta", {"charset": "utf-8"}),
        el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
        el("title", None, f"{title} · tallymark"),
        el("link", {"rel": "icon", "href": urls.static("favicon.svg", v), "type": "image/svg+xml"}),
    ]
    if charts:
        head.append(el("link", {"rel": "stylesheet", "href": urls.static("vendor/uplot/uPlot.min.css", v)}))
        head.append(el("script", {"src": urls.static("vendor/uplot/uPlot.iife.min.js", v), "defer": True}))
    head += [
        el("link", {"rel": "preload", "as": "fetch", "href": u, "crossorigin": "anonymous"}) for u in preload
    ]
    head.append(el("link", {"rel": "stylesheet", "href": urls.static("app.css", v)}))
    head.append(el("script", {"type": "module", "src": urls.static("js/main.js", v)}))
    # Fetch every module at once instead of discovering imports level by level.
    head += [el("link", {"rel": "modulepreload", "href": urls.static(m, v)}) for m in assets.modules()]
    header = el(
        "header",
        {"class": "top"},
        el("a", {"class": "brand", "href": urls.home()}, el("span", {"class": "logo"}, "▮▮▮▯"), "tallymark"),
        _crumbs(crumbs),
        el(
            "nav",
            {"class": "links"},
            el("a", {"href": "/docs"}, "API"),
            el("span", {"class": "version"}, f"v{__version__}"),
        ),
    )
    doc = frag(
        Markup("<!doctype html>"),
        el(
            "html",
            {"lang": "en"},
            el("head", None, head),
            el("body", {"data-page": page_id}, header, el("main", None, body)),
        ),
    )
    return HTMLResponse(str(doc), status_code=status_code, headers=SECURITY_HEADERS)


def error_page(status: int, message: str, crumbs: Sequence[Crumb] = ()) -> HTMLResponse:
    title = "Not found" if status == 404 else "Error"
    body = el(
        "section",
        {"class": "empty"},
        el("h1", None, title),
        el("p", {"class": "error-text"}, message),
        el("p", None, el("a", {"href": urls.home()}, "All workspaces")),
    )
    return page(title, [("workspaces", urls.home()), *crumbs], body, page_id="error", status_code=status)


WORKSPACE_SECTIONS = (  # (id, label, second URL segment or None for the projects page)
    ("projects", "Projects", None),
    ("artifacts", "Artifacts", "artifacts"),
    ("models", "Models", "models"),
    ("jobs", "Jobs", "jobs"),
    ("endpoints", "Endpoints", "endpoints"),
)


def workspace_nav(workspace: str, current: str | None = None) -> Markup:
    """The workspace's sections (projects, artifacts, models, jobs, endpoints) as one row of links."""
    ws = urls.workspace(workspace)
    links = [
        el(
            "a",
            {
                "class": "button" + (" current" if sid == current else ""),
                "href": f"{ws}/{seg}" if seg else ws,
                "aria-current": "page" if sid == current else None,
                "data-section": sid,
            },
            label,
        )
        for sid, label, seg in WORKSPACE_SECTIONS
    ]
    return el("nav", {"class": "workspace-links", "id": "workspace-links", "aria-label": "workspace"}, links)
