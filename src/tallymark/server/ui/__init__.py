"""The web UI: server-rendered pages at the DESIGN §4 URLs, small scripts, a vendored uPlot.

``create_app`` includes :data:`router` after the API routes. Pages: ``pages_*.py``; the HTML
builder that escapes by default: ``html.py``; scripts and styles: ``static/``. The login routes
come first: ``/login`` would otherwise be read as a workspace.
"""

from __future__ import annotations

from fastapi import APIRouter

from tallymark.server.ui import pages_admin, pages_audit, pages_login, routes

router = APIRouter(include_in_schema=False)
router.include_router(pages_login.router)
router.include_router(pages_admin.router)  # /-/admin (server admins)
router.include_router(pages_audit.router)  # /-/admin/audit (server admins)
router.include_router(routes.router)

__all__ = ["router"]
