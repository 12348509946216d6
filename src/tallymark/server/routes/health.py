"""``GET /api/v1/health``: liveness plus the version and schema revision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tallymark import __version__
from tallymark.server.auth import auth_enabled, needs_init
from tallymark.server.permissions import need
from tallymark.store.migrate import SCHEMA_HEAD

router = APIRouter(tags=["health"])


@router.get("/health", dependencies=[need("health")])
def health(request: Request) -> dict[str, Any]:
    """Liveness; with auth on, also whether the server still waits for ``tallymark admin init``."""
    out: dict[str, Any] = {"status": "ok", "version": __version__, "schema": SCHEMA_HEAD}
    if auth_enabled(request):
        out["auth"] = "api_key"
        if needs_init(request.app.state.store):
            out["auth"] = "needs admin init"
            out["message"] = "no users yet: run `tallymark admin init` on this server's store"
    else:
        out["auth"] = "none (loopback only)"
    return out
