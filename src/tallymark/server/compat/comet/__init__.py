"""The ``comet_ml`` SDK's wire protocol, so notebooks written for Comet log into tallymark unchanged.

Point a notebook at the server with ``COMET_URL_OVERRIDE=http://HOST:PORT/clientlib/`` and
``COMET_API_KEY``; see docs/comet.md for what is supported. The SDK calls three roots, all taken from
that host: ``/clientlib/…``, ``/api/rest/v2/…`` and ``/clientlib/rest/v2/…``.

Modules, one per resource: :mod:`.lifecycle` (create, resume, heartbeat, end), :mod:`.log` (metrics,
parameters, others, tags, output, system details, git), :mod:`.uploads` (files), :mod:`.artifacts`,
:mod:`.registry`, :mod:`.reads` (the ``API`` read side); :mod:`.translate` holds the pure translation
both the routes and :mod:`.offline` (``tallymark upload`` of a Comet offline archive) use.

Importing this package starts nothing and imports no web framework; :func:`mount` does.
"""

from __future__ import annotations

from typing import Any

ROOTS = ("/clientlib", "/api/rest/v2", "/clientlib/rest/v2")
REST_ROOTS = ("/api/rest/v2", "/clientlib/rest/v2")

# Paths whose bodies are file uploads (the server applies the asset size limit, not the JSON one).
UPLOAD_SUFFIXES = (
    "/clientlib/asset/upload",
    "/clientlib/visualizations/upload",
    "/clientlib/git-patch/upload",
    "/write/experiment/upload-asset",
    "/write/experiment/git/patch",
)


def mount(app: Any) -> None:
    """Include the adapter's routes in ``app`` under its three roots (before any catch-all route)."""
    from tallymark.server.compat.comet import artifacts, lifecycle, log, reads, registry, uploads
    from tallymark.server.compat.comet.http import fallback_router

    # Every adapter route: reads need a role in the workspace the request names (by experimentKey,
    # workspaceName, teamName ...), writes need member there; see tallymark.server.permissions.
    from tallymark.server.compat.comet.translate import DEFAULT_WORKSPACE
    from tallymark.server.permissions import need, need_by_method

    by_method = [need_by_method(fallback=DEFAULT_WORKSPACE)]
    modules = (lifecycle, log, uploads, artifacts, registry, reads)
    for prefix in REST_ROOTS:
        for m in modules:
            app.include_router(m.rest, prefix=prefix, dependencies=by_method)
    for m in modules:
        app.include_router(m.clientlib, prefix="/clientlib", dependencies=by_method)
    fallback = fallback_router()  # anything else under the three roots: a Comet-shaped 404
    for prefix in (*REST_ROOTS, "/clientlib"):
        app.include_router(fallback, prefix=prefix, dependencies=[need("comet.unknown")])
