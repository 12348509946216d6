"""The audit log as a server admin reads it over HTTP and in the UI: entries page by page (newest
first), entries per day, the verify report, and a checkpoint signed on demand.

The log itself (format, chain, checkpoints, what verification catches) is
:mod:`tallymark.service.audit`; this module adds the caller checks (``audit.read``,
``audit.checkpoint``: server admins only, NotFound to anyone else) and the shapes the REST routes
and pages answer. Reading and verifying never write: a verify over a log without a signing key
does not create one.

>>> page = list_entries(store, caller, actor="mia", limit=50)       # doctest: +SKIP
>>> page["entries"][0]["seq"] > page["entries"][-1]["seq"]           # newest first
True
>>> more = list_entries(store, caller, actor="mia", before=page["nextBefore"])  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from tallymark.service import audit, guard
from tallymark.service.caller import Caller
from tallymark.service.errors import Conflict, Invalid, ServiceError
from tallymark.service.signed_note import NoteError
from tallymark.service.store import Store
from tallymark.store.schema import audit_checkpoints, audit_log

__all__ = [
    "DAY_MS",
    "MAX_LIMIT",
    "checkpoint_now",
    "entries_per_day",
    "list_entries",
    "parse_since",
    "verify_report",
]

MAX_LIMIT = 1000
DAY_MS = 86_400_000


class CheckpointFailed(ServiceError):
    """The signing key could not be read or written (a condition of the server, not the request)."""

    status = 503
    code = "unavailable"


def parse_since(value: str | None) -> int | None:
    """``since`` as ms since the epoch: an ISO date or time (UTC unless it names a zone), or ms."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        if len(text) > 15:  # past the year 30000: a mistake, and too big for the database
            raise Invalid(f"since {text!r}: milliseconds since the epoch, at most 15 digits")
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            f"since {text!r}: give an ISO date or time (2026-12-01, 2026-12-01T14:30) or ms"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def entry_out(row: dict[str, Any]) -> dict[str, Any]:
    """An entry as the API answers it (camelCase, every field of the hashed message)."""
    return {
        "seq": row["seq"],
        "time": row["time"],
        "actor": row["actor"],
        "action": row["action"],
        "objectKind": row["object_kind"],
        "objectRef": row["object_ref"],
        "workspace": row["workspace"],
        "requestId": row["request_id"],
        "payloadSha256": row["payload_sha256"],
        "prevHash": row["prev_hash"],
        "hash": row["hash"],
    }


def list_entries(
    store: Store,
    caller: Caller,
    actor: str | None = None,
    object_ref: str | None = None,
    since_ms: int | None = None,
    before: int | None = None,
    limit: int = 100,
    action: str | None = None,
) -> dict[str, Any]:
    """Entries newest first: at most ``limit`` with ``seq`` below ``before`` (all when None).

    ``object_ref`` matches the ref or any version of it (``REF:…``), as :func:`audit.entries`;
    ``action`` matches an action (``api_key.create``) or a family (``api_key``). Answers
    ``{"entries": [...], "nextBefore": seq or None, "total": entries in the log}``; pass
    ``nextBefore`` back as ``before`` for the next (older) page.
    """
    guard.allow(caller, "audit.read")
    limit = max(1, min(int(limit), MAX_LIMIT))
    stmt = select(audit_log)
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if object_ref:
        stmt = stmt.where(
            (audit_log.c.object_ref == object_ref)
            | audit_log.c.object_ref.startswith(object_ref + ":", autoescape=True)
        )
    if action:
        stmt = stmt.where(
            (audit_log.c.action == action) | audit_log.c.action.startswith(action + ".", autoescape=True)
        )
    if since_ms is not None:
        stmt = stmt.where(audit_log.c.time >= since_ms)
    if before is not None:
        stmt = stmt.where(audit_log.c.seq < before)
    stmt = stmt.order_by(audit_log.c.seq.desc()).limit(limit + 1)
    with store.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        total = conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "entries": [entry_out(r) for r in rows],
        "nextBefore": rows[-1]["seq"] if more and rows else None,
        "total": total,
    }


def entries_per_day(
    store: Store, caller: Caller, days: int = 30, now_ms: int | None = None
) -> list[dict[str, Any]]:
    """``[{"day": start of the UTC day in ms, "count": n}, ...]`` for the last ``days`` days, oldest
    first, days without entries included (as 0): what the audit page draws."""
    from tallymark.service.store import now_ms as _now

    guard.allow(caller, "audit.read")
    days = max(1, min(int(days), 366))
    today = (now_ms if now_ms is not None else _now()) // DAY_MS
    first = today - days + 1
    day = (audit_log.c.time // DAY_MS).label("day")
    stmt = select(day, func.count()).where(audit_log.c.time >= first * DAY_MS).group_by(day)
    with store.db.read() as conn:
        counts = {int(d): int(n) for d, n in conn.execute(stmt)}
    return [{"day": d * DAY_MS, "count": counts.get(d, 0)} for d in range(first, today + 1)]


def verify_report(store: Store, caller: Caller) -> dict[str, Any]:
    """:func:`audit.verify` of the whole log against its stored checkpoints, as JSON (a read:
    nothing is written, no key is created)."""
    guard.allow(caller, "audit.read")
    report = audit.verify(store)
    with store.db.read() as conn:
        stored = conn.execute(select(func.count()).select_from(audit_checkpoints)).scalar() or 0
        newest = conn.execute(
            select(audit_checkpoints.c.size, audit_checkpoints.c.created_at)
            .order_by(audit_checkpoints.c.id.desc())
            .limit(1)
        ).first()
    return {
        "ok": report.ok,
        "size": report.size,
        "head": report.head,
        "problem": report.problem,
        "firstBad": report.first_bad,
        "checkpointsMatched": report.checkpoints,
        "checkpointsStored": stored,
        "lastCheckpoint": None if newest is None else {"size": newest.size, "createdAt": newest.created_at},
    }


def checkpoint_now(store: Store, caller: Caller) -> dict[str, Any]:
    """Record who asked (one ``audit.checkpoint`` entry), then sign the log's size and head, so the
    checkpoint covers its own request. Conflict (409) when the log does not verify.

    The whole log is verified first, not only the entries since the newest checkpoint (what
    :func:`audit.checkpoint` checks): an admin who asks for a signature on a page that shows the
    log broken gets a refusal, not a checkpoint over an edit someone made further back.
    """
    guard.allow(caller, "audit.checkpoint")
    report = audit.verify(store)
    if not report.ok:
        raise Conflict(f"refusing to sign a checkpoint: the audit log does not verify: {report.problem}")
    with guard.write(store, caller, "audit.checkpoint", workspace=None, object=("audit_log", "checkpoint")):
        pass
    try:
        cp = audit.checkpoint(store)
        vkey = audit.signer(store).verifier.encode()
    except audit.ChainBroken as exc:
        raise Conflict(str(exc)) from None
    except (OSError, NoteError) as exc:
        raise CheckpointFailed(f"cannot sign a checkpoint: {exc}") from None
    return {"origin": cp.origin, "size": cp.size, "head": cp.head, "note": cp.note, "verifierKey": vkey}
