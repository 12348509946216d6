"""The audit log over HTTP (server admins only; 404 to anyone else, like the other admin routes).

* ``GET /api/v1/admin/audit``: entries newest first; filters ``actor``, ``object`` (a ref or any
  version of it), ``action`` (an action or its family), ``since`` (ISO date/time or ms); paging with
  ``limit`` (1–1000) and ``before`` (the ``nextBefore`` of the previous page).
* ``GET /api/v1/admin/audit/verify``: the whole chain recomputed and checked against the stored
  checkpoints; ``ok`` false names the first bad entry. A read: it changes nothing.
* ``POST /api/v1/admin/audit/checkpoint``: sign one now (after recording who asked); answers the
  signed note and the log's verifier key.

The rules live in :mod:`tallymark.service.auditlog` and :mod:`tallymark.service.audit`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, reply
from tallymark.service import auditlog

router = APIRouter(prefix="/admin/audit", tags=["admin"])

Text = Annotated[str | None, Query(max_length=500)]


@router.get("", dependencies=[need("audit.read")])
def list_entries(
    store: StoreDep,
    caller: CallerDep,
    actor: Text = None,
    object: Text = None,  # noqa: A002 - the query parameter's name (as `tallymark audit log --object`)
    action: Text = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=auditlog.MAX_LIMIT)] = 100,
) -> TallyJSON:
    since_ms = auditlog.parse_since(since)
    return reply(auditlog.list_entries(store, caller, actor, object, since_ms, before, limit, action))


@router.get("/verify", dependencies=[need("audit.read")])
def verify(store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(auditlog.verify_report(store, caller))


@router.post("/checkpoint", dependencies=[need("audit.checkpoint")])
def checkpoint(store: StoreDep, caller: CallerDep) -> TallyJSON:
    return reply(auditlog.checkpoint_now(store, caller))
