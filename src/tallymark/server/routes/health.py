"""``GET /api/v1/health``: liveness plus the version and schema revision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tallymark import __version__
from tallymark.store.migrate import SCHEMA_HEAD

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "schema": SCHEMA_HEAD}
