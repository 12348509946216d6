"""The one gate of the service layer: may this caller do this operation here, and (for a write) the
change and its audit entry in one transaction.

Reads call :func:`allow` with the workspace that owns what they read (from
:mod:`tallymark.service.lookups` when only a key or id is known). Writes run inside :func:`write`:

>>> with guard.write(store, caller, "experiment.end", workspace="risk",
...                  object=("experiment", key), payload={"key": key}) as w:
...     w.conn.execute(...)          # the change
...     w.object = ("experiment", key)  # may be refined once known (a new version's number)

The permission is checked before the transaction starts; the chain's lock is taken first in it
(so two writers cannot deadlock on it and a row lock); the entry is appended last, and both
commit or neither does. A write that turns out to change nothing (a replayed batch, an
idempotent create) sets ``w.changed = False`` and appends no entry.
A write whose change causes further recorded changes (an approval moving versions' statuses)
adds them to ``w.then`` as ``(action, object, payload)``: appended right after the main entry, in
the same transaction, with an action of the same prefix.

Answers (the same as the HTTP layer's): a workspace where the caller has no role raises
:class:`~tallymark.service.errors.NotFound` (indistinguishable from an object that does not
exist); too weak a role or no approver flag raises :class:`~tallymark.service.errors.Forbidden`;
a server-admin operation raises NotFound to anyone else (the route does not exist for them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tallymark.service import audit
from tallymark.service.caller import Caller, Role
from tallymark.service.errors import Forbidden, NotFound
from tallymark.service.operations import Operation, operation
from tallymark.service.store import Store

__all__ = ["Write", "allow", "check_role", "write"]


def check_role(caller: Caller, workspace: str, needed: Role, approver: bool = False) -> None:
    """404 without a role in ``workspace``; 403 with too weak a role or without the approver flag."""
    if caller.auth_method == "local":
        return
    have = caller.role(workspace)
    if have is None:
        raise NotFound(f"no workspace or object {workspace!r} visible to {caller.name}")
    if not caller.has_role(workspace, needed):
        raise Forbidden(f"{caller.name} is a {have} of workspace {workspace!r}; this needs {needed}")
    if approver and not caller.may_approve(workspace):
        raise Forbidden(f"{caller.name} is not an approver of workspace {workspace!r}")


def allow(caller: Caller, op: str | Operation, workspace: str | None = None) -> Operation:
    """Raise unless ``caller`` may do ``op`` (in ``workspace`` for a workspace permission)."""
    o = op if isinstance(op, Operation) else operation(op)
    p = o.permission
    if p == "public" or caller.auth_method == "local":
        return o
    if p == "authenticated":
        return o
    if p == "server:admin":
        if not caller.is_admin:
            raise NotFound(f"no such operation for {caller.name}: {o.name} needs a server admin")
        return o
    if workspace is None:
        raise NotFound(f"{o.name}: no workspace or object visible to {caller.name}")
    check_role(caller, workspace, p.split(":", 1)[1], o.approver)  # type: ignore[arg-type]
    return o


@dataclass
class Write:
    """What :func:`write` yields: the transaction's connection and what the audit entry will say."""

    conn: Connection
    action: str
    object: tuple[str, str]
    workspace: str | None
    payload: Any
    changed: bool = True
    entries: list[dict[str, Any]] = field(default_factory=list)
    # Further entries of this write, each (action, object, payload), appended right after the main
    # one: what the change caused (the statuses an approval moves versions to), same action prefix.
    then: list[tuple[str, tuple[str, str], Any]] = field(default_factory=list)


@contextmanager
def write(
    store: Store,
    caller: Caller,
    op: str | Operation,
    *,
    workspace: str | None,
    object: tuple[str, str],  # noqa: A002 - (kind, ref) of the object acted on
    payload: Any = None,
) -> Iterator[Write]:
    """Check ``op`` for ``caller`` in ``workspace``, then yield the write transaction (see module)."""
    o = allow(caller, op, workspace)
    if o.audit is None:
        raise ValueError(f"{o.name} is a read: it has no audit action, so it cannot write")
    with store.db.write() as conn:
        audit.lock(conn)
        w = Write(conn, o.audit, object, workspace, payload if payload is not None else {})
        yield w
        if w.changed:
            if w.action != o.audit and w.action.split(".")[0] != o.audit.split(".")[0]:
                raise ValueError(f"{o.name} may not record action {w.action!r}")
            w.entries.append(
                audit.append(conn, caller.name, w.action, w.object, w.workspace, w.payload, caller.request_id)
            )
            for action, obj, payload in w.then:
                if action.split(".")[0] != o.audit.split(".")[0]:
                    raise ValueError(f"{o.name} may not record action {action!r}")
                w.entries.append(
                    audit.append(conn, caller.name, action, obj, w.workspace, payload, caller.request_id)
                )
    if w.entries:
        audit.checkpoint_if_due(store, seq=w.entries[-1]["seq"])
