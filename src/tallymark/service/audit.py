"""The audit log: who did what, hash-chained, with signed checkpoints an auditor can check alone.

Entries
    Every audited write calls :func:`append` *inside its own write transaction*, so the entry
    exists exactly when the change does. An entry is ``seq`` (1, 2, 3 … without gaps), ``time``
    (the writer's clock, integer ms since the Unix epoch, UTC), ``actor``, ``action`` (e.g.
    ``model_version.register``), the object (``object_kind``, ``object_ref``, e.g.
    ``model_version`` / ``risk/fraud-xgb:1.0.0``), ``workspace`` (or null), ``request_id`` (or
    null), ``payload_sha256`` (SHA-256 of the request payload — the payload itself is not kept, so a
    secret in it never reaches the log), ``prev_hash`` (the previous entry's hash; 64 zeros for
    entry 1) and ``hash``.

Hash encoding (version 1)
    ``hash = hex(SHA-256(ns("tallymark-audit-v1") ‖ f(seq) ‖ f(time) ‖ f(actor) ‖ f(action) ‖
    f(object_kind) ‖ f(object_ref) ‖ f(workspace) ‖ f(request_id) ‖ f(payload_sha256) ‖
    f(prev_hash)))``, lowercase hex, where ``f(null) = "~"`` and otherwise ``f(v) = ns(v)``: the
    netstring ``<length in bytes, decimal>:<UTF-8 bytes of v>,`` with integers written in decimal.
    Every field has one encoding and none can run into the next, so no two entries share a
    message. The payload hash is SHA-256 of the payload's bytes, or of its canonical JSON
    (``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8).

Concurrent writers
    The chain is one sequence, so appends are serialized: on SQLite by the store's single writer
    (``BEGIN IMMEDIATE``, see :mod:`tallymark.store.db`); on PostgreSQL by a transaction-scoped
    advisory lock taken before the head is read, so the next writer waits until this transaction
    commits or rolls back and then sees its entry (READ COMMITTED reads the latest commit per
    statement). The primary key on ``seq`` and a unique ``prev_hash`` make a duplicate number or a
    fork impossible even if that discipline were broken: such a write fails instead. Append last in
    the transaction: the lock is held until it ends.

Checkpoints
    :func:`checkpoint` signs ``<origin>\\n<size>\\n<base64 of the head hash's 32 bytes>\\n`` as a
    C2SP signed note (:mod:`tallymark.service.signed_note`) with the Ed25519 key in
    ``settings.audit_key_file`` — a file outside the database — and stores it in
    ``audit_checkpoints``; ``tallymark audit checkpoint --out FILE`` also writes it where the
    database's owner cannot reach. :func:`checkpoint_if_due` makes one every
    ``audit_checkpoint_entries`` entries or ``audit_checkpoint_minutes`` minutes (settings).
    Only a chain that verifies since the newest valid checkpoint
    is signed (:class:`ChainBroken` otherwise).

What :func:`verify` catches
    It recomputes every hash and link and names the first entry that was edited (its fields no
    longer give its hash), deleted (a gap in ``seq``), reordered (an entry whose hash is right for
    another position) or rewritten with its own hash recomputed (the next entry's ``prev_hash``
    disagrees). Then it checks every stored checkpoint and the one given: the signature, the
    origin, that the log still has that many entries (else: truncated) and that entry ``size``
    still has that hash (else: the chain was recomputed; the message names the range between the
    last checkpoint that matches and the first that does not). Without a checkpoint, someone who
    can write the database can delete the newest entries or recompute the whole chain unseen:
    only a checkpoint kept outside the database (and a key they cannot read) catches that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, func, select, text

from tallymark.service.signed_note import NoteError, Signer, Verifier, load_or_create_signer, open_note
from tallymark.service.store import Store, now_ms
from tallymark.store.schema import audit_checkpoints, audit_log

GENESIS = "0" * 64
ENCODING = "tallymark-audit-v1"
PG_LOCK = 7263520  # the advisory lock of the chain (migrations use 7263519)
_HASH_FIELDS = (
    "seq",
    "time",
    "actor",
    "action",
    "object_kind",
    "object_ref",
    "workspace",
    "request_id",
    "payload_sha256",
    "prev_hash",
)
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
log = logging.getLogger(__name__)
# Built once: statements with bound parameters only hit SQLAlchemy's compiled cache directly.
_HEAD = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT = audit_log.insert()


def _ns(value: Any) -> bytes:
    if value is None:
        return b"~"
    data = str(value).encode()
    return b"%d:%s," % (len(data), data)


def entry_hash(fields: dict[str, Any]) -> str:
    """The hash of an entry from its fields (``hash`` itself, if present, is ignored)."""
    msg = _ns(ENCODING) + b"".join(_ns(fields[name]) for name in _HASH_FIELDS)
    return hashlib.sha256(msg).hexdigest()


def payload_sha256(payload: Any) -> str:
    """SHA-256 of bytes as they are, of anything else as canonical JSON (see the module docstring)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    if isinstance(payload, bytes | bytearray | memoryview):
        data = bytes(payload)
    else:
        data = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def append(
    conn: Connection,
    actor: str,
    action: str,
    object: tuple[str, str],  # noqa: A002 - (kind, ref) of the object acted on
    workspace: str | None,
    payload: Any,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Append one entry in the caller's write transaction (``with store.db.write() as conn``).

    >>> with store.db.write() as conn:
    ...     change(conn)
    ...     audit.append(conn, "alice", "model_version.register", ("model_version", "risk/m:1.0.0"),
    ...                  "risk", {"experiment_key": key})
    """
    kind, ref = object
    for what, value in (("actor", actor), ("action", action), ("object kind", kind), ("object ref", ref)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"an audit entry needs a non-empty {what}")
    lock(conn)
    head = conn.execute(_HEAD).first()
    entry = {
        "seq": 1 if head is None else head.seq + 1,
        "time": now_ms(),
        "actor": actor,
        "action": action,
        "object_kind": kind,
        "object_ref": ref,
        "workspace": workspace,
        "request_id": request_id,
        "payload_sha256": payload_sha256(payload),
        "prev_hash": GENESIS if head is None else head.hash,
    }
    entry["hash"] = entry_hash(entry)
    conn.execute(_INSERT, entry)
    return entry


def lock(conn: Connection) -> None:
    """Take the chain's lock for the rest of this transaction (:func:`append` does it too).

    Call it first in a transaction that appends several entries between other writes: taking it
    before any row lock means two such transactions cannot each hold what the other waits for.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({PG_LOCK})"))
    elif not conn.info.get("immediate"):
        # A deferred SQLite transaction could read the head, then lose the race to write it.
        raise RuntimeError("audit.append must run inside Database.write(), the store's one writer")


def entries(
    store: Store,
    actor: str | None = None,
    object_ref: str | None = None,
    since_ms: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Entries in ``seq`` order; ``object_ref`` matches the ref or any version of it (``REF:…``)."""
    stmt = select(audit_log)
    if actor is not None:
        stmt = stmt.where(audit_log.c.actor == actor)
    if object_ref is not None:
        stmt = stmt.where(
            (audit_log.c.object_ref == object_ref)
            | audit_log.c.object_ref.startswith(object_ref + ":", autoescape=True)
        )
    if since_ms is not None:
        stmt = stmt.where(audit_log.c.time >= since_ms)
    if limit is not None:  # the newest `limit`, still shown oldest first
        stmt = stmt.order_by(audit_log.c.seq.desc()).limit(limit)
    with store.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    return sorted(rows, key=lambda r: r["seq"])


# --- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    head: str  # hex
    note: str


def signer(store: Store) -> Signer:
    """The log's signing key (created in ``settings.audit_key_file`` on first use)."""
    return load_or_create_signer(store.settings.audit_key_file)


def checkpoint_text(origin: str, size: int, head: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(bytes.fromhex(head)).decode()}\n"


def parse_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """A checkpoint from a signed note; NoteError unless ``verifier`` signed a well-formed one."""
    lines = open_note(note, verifier).split("\n")[:-1]
    if len(lines) < 3 or not _SIZE_RE.fullmatch(lines[1]):
        raise NoteError("not a checkpoint: expected origin, size and head hash lines")
    try:
        head = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's head hash is not base64") from None
    if len(head) != 32:
        raise NoteError("the checkpoint's head hash is not 32 bytes")
    return Checkpoint(lines[0], int(lines[1]), head.hex(), note)


class ChainBroken(ValueError):
    """The chain does not verify: no checkpoint is signed over it (the message says where)."""


def checkpoint(store: Store) -> Checkpoint:
    """Sign the log's current size and head, store it, and return it (the latest, if unchanged).

    The entries since the newest valid checkpoint are verified first (ChainBroken if they do not),
    so a key never vouches for a chain someone already edited.
    """
    key = signer(store)
    last: Checkpoint | None = None
    for c in reversed(_stored_checkpoints(store)):
        try:
            last = parse_checkpoint(c.note, key.verifier)
            break
        except NoteError:
            continue  # not ours or altered: verify further back
    with store.db.read() as conn:
        top = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
    if last is not None and top < last.size:
        raise ChainBroken(
            f"the log ends at entry {top} but a checkpoint covers {last.size} entries: truncated"
        )
    report = Report()
    _check_chain(store, report, set(), *((last.size, last.head) if last else (0, GENESIS)))
    if report.problem is not None:
        raise ChainBroken(f"refusing to sign a checkpoint: {report.problem}")
    size, head = report.size, report.head
    if last is not None and (last.size, last.head) == (size, head):
        return last
    note = key.sign(checkpoint_text(key.name, size, head))
    with store.db.write() as conn:
        conn.execute(
            audit_checkpoints.insert().values(size=size, head_hash=head, note=note, created_at=now_ms())
        )
    return Checkpoint(key.name, size, head, note)


# (database url) → (entries covered by the newest checkpoint, when it was made, ms): lets a write
# decide "not due" without a query; refreshed from the database whenever it might be due.
_LAST_CHECKPOINT: dict[str, tuple[int, int]] = {}


def checkpoint_if_due(
    store: Store, every: int | None = None, seq: int | None = None, minutes: float | None = None
) -> Checkpoint | None:
    """A new checkpoint when ``every`` entries were appended since the last one, or when the last one
    is older than ``minutes`` and entries were appended since; called after a write commits
    (``seq``: the entry it appended, which saves a query when nothing is due).

    The write it follows has committed already, so a key problem is logged, not raised.
    """
    s = store.settings
    every = s.audit_checkpoint_entries if every is None else every
    minutes = s.audit_checkpoint_minutes if minutes is None else minutes
    url, now = s.database_url, now_ms()
    known = _LAST_CHECKPOINT.get(url)
    if seq is not None and known is not None:
        size_then, made = known
        if seq - size_then < every and now - made < minutes * 60_000:
            return None
    with store.db.read() as conn:
        size = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
        last = conn.execute(
            select(audit_checkpoints.c.size, audit_checkpoints.c.created_at)
            .order_by(audit_checkpoints.c.id.desc())
            .limit(1)
        ).first()
        if last is not None:
            last_size, last_time = last.size, last.created_at
        else:  # no checkpoint yet: minutes count from the first entry
            last_size, last_time = 0, conn.execute(select(func.min(audit_log.c.time))).scalar() or now
    _LAST_CHECKPOINT[url] = (last_size, last_time)
    due = size - last_size >= every or (size > last_size and now - last_time >= minutes * 60_000)
    if not due:
        return None
    try:
        made_cp = checkpoint(store)
    except (OSError, NoteError) as exc:
        log.warning("audit checkpoint at %d entries failed: %s", size, exc)
        return None
    except ChainBroken as exc:
        log.error("audit log: %s (run `tallymark audit verify`)", exc)
        return None
    _LAST_CHECKPOINT[url] = (made_cp.size, now_ms())
    return made_cp


# --- verification ------------------------------------------------------------------------------


@dataclass
class Report:
    """What :func:`verify` found: ``problem`` is None when the log is intact."""

    size: int = 0
    head: str = GENESIS
    problem: str | None = None
    first_bad: int | None = None
    checkpoints: int = 0  # signed checkpoints that matched

    @property
    def ok(self) -> bool:
        return self.problem is None


def _rows(store: Store, after: int = 0) -> Iterator[Any]:
    stmt = select(audit_log).order_by(audit_log.c.seq)
    if after:  # from the start, rows numbered below 1 are read too: they are tampering to name
        stmt = stmt.where(audit_log.c.seq > after)
    with store.db.read() as conn:
        yield from conn.execution_options(yield_per=5000).execute(stmt)


def _written_as(row: dict[str, Any], size: int) -> int | None:
    """The position an entry's hash was computed for, when it is not where it is now."""
    for seq in range(1, size + 1):
        if seq != row["seq"] and entry_hash({**row, "seq": seq}) == row["hash"]:
            return seq
    return None


def _check_chain(
    store: Store, report: Report, wanted: set[int], start: int = 0, start_hash: str = GENESIS
) -> dict[int, str]:
    """Walk the chain after entry ``start`` (whose hash is ``start_hash``); fill ``report``; return
    the hashes at the sizes in ``wanted``."""
    with store.db.read() as conn:
        total = conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0
        top = conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0
    at: dict[int, str] = {start: start_hash}
    expected, prev = start + 1, start_hash
    report.size, report.head = start, start_hash
    for r in _rows(store, start):
        row = dict(r._mapping)
        seq = row["seq"]
        if seq < expected:  # only a hand-made row can be numbered below 1
            report.problem = f"an entry numbered {seq} stands where entry {expected} belongs"
            report.first_bad = expected
            break
        if seq != expected:
            gap = f"entry {expected}" if seq == expected + 1 else f"entries {expected}–{seq - 1}"
            report.problem = f"{gap} missing: deleted from the log (entry {seq} follows entry {expected - 1})"
            report.first_bad = expected
            break
        if entry_hash(row) != row["hash"]:
            orig = _written_as(row, max(top, total))
            report.first_bad = seq
            report.problem = (
                f"entry {seq} was edited: its fields no longer give its hash"
                if orig is None
                else f"entry {seq} is out of place: it was written as entry {orig} (entries were reordered)"
            )
            break
        if row["prev_hash"] != prev:
            report.first_bad = seq - 1
            report.problem = (
                f"entry {seq - 1} was rewritten with its hash recomputed: entry {seq}, intact, was chained "
                "to a different entry before it"
            )
            break
        prev = row["hash"]
        if seq in wanted:
            at[seq] = prev
        report.size, report.head = seq, prev
        expected += 1
    return at


def _stored_checkpoints(store: Store) -> list[Any]:
    with store.db.read() as conn:
        return list(
            conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size, audit_checkpoints.c.id))
        )


def _verifier(store: Store, vkey: str | None) -> Verifier:
    if vkey is not None:
        return Verifier.decode(vkey)
    from tallymark.service.signed_note import load_signer

    return load_signer(store.settings.audit_key_file).verifier


def verify(store: Store, checkpoint: str | None = None, vkey: str | None = None) -> Report:
    """Recompute the chain and check it against every stored checkpoint and ``checkpoint`` (a note).

    ``vkey`` is the log's verifier key (``NAME+ID+BASE64``; NoteError if malformed); by default it
    comes from the key file.
    """
    if vkey is not None:
        Verifier.decode(vkey)  # a malformed key is the caller's mistake: say so before anything else
    report = Report()
    stored = _stored_checkpoints(store)
    verifier: Verifier | None = None
    key_problem = None
    if stored or checkpoint is not None:
        try:
            verifier = _verifier(store, vkey)
        except NoteError as exc:
            key_problem = f"cannot check checkpoint signatures: {exc} (pass the log's verifier key)"
    claims: list[tuple[str, Checkpoint]] = []
    bad_sig: str | None = None
    if verifier is not None:
        if checkpoint is not None:
            try:
                claims.append(("the checkpoint given", parse_checkpoint(checkpoint, verifier)))
            except NoteError as exc:
                bad_sig = f"the checkpoint given is refused: {exc}"
        for c in stored:
            try:
                cp = parse_checkpoint(c.note, verifier)
            except NoteError as exc:
                bad_sig = bad_sig or f"stored checkpoint #{c.id} (size {c.size}) is refused: {exc}"
                continue
            claims.append((f"stored checkpoint #{c.id}", cp))
    at = _check_chain(store, report, {cp.size for _, cp in claims})
    if report.problem is not None:
        return report
    if key_problem or bad_sig:
        report.problem = key_problem or bad_sig
        return report
    origin = verifier.name if verifier is not None else ""  # claims exist only with a verifier
    for what, cp in claims:
        if cp.origin != origin:
            report.problem = f"{what} is of another log ({cp.origin!r}, this log is {origin!r})"
            return report
    longest = max(claims, key=lambda c: c[1].size, default=None)
    if longest is not None and longest[1].size > report.size:
        what, size = longest[0], longest[1].size
        report.first_bad = report.size + 1
        gap = f"entry {size}" if size == report.size + 1 else f"entries {report.size + 1}–{size}"
        report.problem = (
            f"the log was truncated: it ends at entry {report.size} but {what} covers {size} "
            f"entries; {gap} deleted"
        )
        return report
    matched: list[int] = []
    mismatched: list[tuple[str, Checkpoint]] = []
    for what, cp in claims:
        if at.get(cp.size) != cp.head:
            mismatched.append((what, cp))
        else:
            matched.append(cp.size)
    if mismatched:
        what, cp = min(mismatched, key=lambda m: m[1].size)
        good = max([s for s in matched if s < cp.size], default=0)
        report.first_bad = good + 1
        report.problem = (
            f"entry {cp.size} does not have the hash {what} signed: the chain was rewritten and recomputed; "
            f"the change is in entries {good + 1}–{cp.size}"
            + (f" (entry {good} still matches a checkpoint)" if good else "")
        )
        return report
    report.checkpoints = len(matched)
    return report
