"""The background sender: ships what the experiment buffered, in batches, off the training thread.

Every ``interval`` seconds (and on ``flush()``) it takes what is buffered, packs metric points into
columns and sends one batch (large backlogs are split). What a batch's answer means decides its fate:

- acknowledged (2xx): stored; a batch id seen before is acknowledged without being stored twice;
- refused (4xx): the batch can never be stored (a value the server cannot hold, a batch too large).
  It is dropped with a warning naming the server's message and the next batches go on; retrying or
  journaling it would only make it block every later batch;
- unavailable (connection refused or reset, timeout, 5xx, 408/429, a failing embedded store):
  retried with backoff, then written to the on-disk journal; later batches follow it there, and the
  journal is replayed in order before anything new is sent once the server answers. An auth refusal
  (401/403: the data is fine, the key is not) is journaled at once, for an upload with the right key.

So when ``flush()`` returns, every point logged before it is either stored or in a journal entry
fsynced on disk (or, when even the journal cannot be written, held in memory and reported at
``end()``). Transport and journal problems never raise into the training code: they are warned
about once, and ``end()`` prints one line saying what was not saved and where the rest is.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tallymark.sdk.journal import Journal, adopt_orphans
from tallymark.sdk.notice import warn as _warn
from tallymark.sdk.transport import TallymarkError, Unavailable, is_refusal
from tallymark.sdk.wire import Batch, Columns, MetricBuffer
from tallymark.settings import ClientSettings

STDOUT_ITEM_BYTES = 1 << 20
MAX_REFUSAL_WARNINGS = 3  # distinct messages; a loop logging a bad value must not flood stderr


class Sender:
    def __init__(
        self,
        transport: Any,
        key: str,
        journal: Journal,
        offline: bool,
        settings: ClientSettings | None = None,
    ) -> None:
        # Batching and retry behaviour comes from the settings (tests tune the attributes directly).
        settings = settings or ClientSettings()
        self.transport = transport
        self.key = key
        self.journal = journal
        self.offline = offline
        self.interval = settings.send_interval
        self.retry_delays = settings.retry_delays
        self.retry_budget = settings.retry_budget  # a hung server: one request timeout, no more
        self.recheck_after = settings.recheck_after  # known down: batches go to the journal at once
        self.max_points_per_batch = settings.max_points_per_batch
        # Buffers. Metric points: one list per metric name, appended to by the training thread.
        self.metric_buffers: dict[str, MetricBuffer] = {}
        self._retired: list[MetricBuffer] = []
        self._lock = threading.Lock()
        self._params: dict[str, Any] = {}
        self._others: dict[str, Any] = {}
        self._tags: list[str] = []
        self._items: list[dict[str, Any]] = []
        self._assets: list[tuple[dict[str, Any], Path, bool]] = []
        self._stdout: list[tuple[str, str]] = []
        self._name: str | None = None
        self._end = False
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._down_since: float | None = None
        self.errors: list[TallymarkError] = []
        self.pending_create: dict[str, Any] | None = None  # set when the server was down at start
        self.refused: list[str] = []
        self.refused_points = 0
        self.lost_assets: list[str] = []
        self._held: list[Batch] = []  # neither sent nor journaled (the journal is not writable)
        self._warned: set[str] = set()
        self._adopter: threading.Thread | None = None
        self.sent_points = 0
        self.before_first_send: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"tallymark-sender-{key[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.offline and getattr(self.transport, "kind", None) == "http":
            self._adopter = threading.Thread(
                target=self._adopt, name=f"tallymark-adopt-{self.key[:8]}", daemon=True
            )
            self._adopter.start()

    def _adopt(self) -> None:
        """Send journals earlier runs left for this server (in the background: training goes on)."""
        try:
            adopt_orphans(self.journal.folder.parent, self.transport, self.key, _warn)
        except Exception as exc:  # noqa: BLE001 - someone else's leftovers must not break this run
            self._warn_once("adopt", f"could not send journals left by earlier runs: {exc!r}")

    # --- producers (any thread) ---
    def new_buffer(self, name: str, int_aware: bool) -> MetricBuffer:
        with self._lock:
            buf = self.metric_buffers.get(name)
            if buf is None:
                buf = self.metric_buffers[name] = MetricBuffer(name, int_aware)
            return buf

    def int_buffer(self, name: str) -> MetricBuffer:
        """Replace a float-only buffer by an int-aware one (the old one is drained first)."""
        with self._lock:
            old = self.metric_buffers.get(name)
            if old is not None and old.iv is not None:
                return old
            if old is not None:
                self._retired.append(old)
            buf = self.metric_buffers[name] = MetricBuffer(name, True)
            return buf

    def params(self, mapping: dict[str, Any]) -> None:
        with self._lock:
            self._params.update(mapping)

    def others(self, mapping: dict[str, Any]) -> None:
        with self._lock:
            self._others.update(mapping)

    def tags(self, tags: list[str]) -> None:
        with self._lock:
            self._tags.extend(tags)

    def item(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(item)

    def name(self, name: str) -> None:
        with self._lock:
            self._name = name

    def asset(self, meta: dict[str, Any], path: Path, cleanup: bool) -> None:
        with self._lock:
            self._assets.append((meta, path, cleanup))
        self._wake.set()

    def stdout(self, stream: str, text: str) -> None:
        with self._lock:
            self._stdout.append((stream, text))

    # --- draining ---
    def _take_metrics(self, budget: int) -> tuple[list[Columns], bool]:
        with self._lock:
            retired, self._retired = self._retired, []
            buffers = retired + list(self.metric_buffers.values())
        out: list[Columns] = []
        for buf in buffers:
            cols = buf.take(budget)
            if cols is None:
                continue
            out.append(cols)
            budget -= len(cols)
            if budget <= 0:
                return out, True
        return out, False

    def _take(self) -> tuple[Batch, list[tuple[dict[str, Any], Path, bool]], bool]:
        with self._lock:
            b = Batch(
                batch_id=uuid.uuid4().hex,
                name=self._name,
                params=self._params,
                others=self._others,
                tags=self._tags,
                items=self._items,
                end=False,
            )
            self._params, self._others, self._tags, self._items, self._name = {}, {}, [], [], None
            out, self._stdout = self._stdout, []
            assets, self._assets = self._assets, []
        b.items.extend(_stdout_items(out))
        b.metrics, more = self._take_metrics(self.max_points_per_batch)
        return b, assets, more

    def drain(self, end: bool = False) -> None:
        """Send everything buffered so far (in the calling thread); with end=True, end the experiment.

        Never raises for a transport or journal problem (see the module docstring)."""
        with self._send_lock:
            try:
                self._drain(end)
            except Exception as exc:  # noqa: BLE001 - a bug here must not break the training run
                self._warn_once("sender", f"sender error: {exc!r}")

    def _drain(self, end: bool) -> None:
        if self.before_first_send is not None:
            hook, self.before_first_send = self.before_first_send, None
            hook()
        held, self._held = self._held, []
        for old in held:
            self._deliver(old)
        while True:
            batch, assets, more = self._take()
            for meta, path, cleanup in assets:
                self._deliver_asset(meta, path, cleanup)
            if end and not more:
                batch.end = True
            if not batch.empty():
                self._deliver(batch)
            if not more:
                break

    # --- delivery ---
    def _warn_once(self, topic: str, msg: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            _warn(msg)

    def _create(self) -> None:
        """Create the experiment the server has not seen yet (the server was down at start)."""
        body = self.pending_create
        if body is None:
            return
        try:
            self.transport.create_experiment(body)
        except TallymarkError as exc:
            if not is_refusal(exc.status):
                raise
            if exc.status != 409:  # 409: it exists (created by a concurrent replay)
                self._warn_once(
                    "create", f"the server refused to create experiment {self.key}: {exc.message}"
                )
        self.pending_create = None

    def _send(self, fn: Callable[[], Any]) -> None:
        """One try: create the experiment if needed, replay the journal, then ``fn``."""
        self._create()
        if self.journal.pending():
            try:
                self.journal.replay(self.transport, self.key, on_refused=self._entry_refused)
            except OSError as exc:  # an unreadable journal must not stop what is new
                self._warn_once("journal-read", f"cannot read the journal at {self.journal.folder}: {exc}")
        fn()

    def _entry_refused(self, entry: Path, exc: TallymarkError) -> bool:
        self._refused(f"journal entry {entry.name}", exc.message, 0)
        return True

    def _refused(self, what: str, message: str, points: int) -> None:
        self.refused.append(message)
        self.refused_points += points
        topic = f"refused:{message}"
        if topic in self._warned:
            return
        if sum(t.startswith("refused:") for t in self._warned) >= MAX_REFUSAL_WARNINGS:
            self._warn_once("refused-more", "more requests refused; end() reports how many")
            return
        self._warn_once(
            topic,
            f"the server refused {what} of experiment {self.key} (dropped; later batches go on): {message}",
        )

    def _attempt(self, fn: Callable[[], Any]) -> bool:
        """Run fn with retries; True when delivered, False when it should be journaled.

        Raises TallymarkError for a refusal (4xx other than auth): the caller drops that request."""
        if self.offline:
            return False
        if self._down_since is not None and time.monotonic() - self._down_since < self.recheck_after:
            return False  # known down: journal at once, try again in a few seconds
        give_up = time.monotonic() + self.retry_budget
        for delay in (*self.retry_delays, None):
            try:
                self._send(fn)
            except (Unavailable, TallymarkError) as exc:
                if isinstance(exc, TallymarkError) and is_refusal(exc.status):
                    raise
                if isinstance(exc, TallymarkError) and exc.status in (401, 403):
                    reason = f"the server refused the API key ({exc.status}): {exc.message}"
                elif delay is not None and time.monotonic() + delay < give_up:
                    time.sleep(delay)
                    continue
                else:
                    reason = getattr(exc, "message", None) or str(exc)
            else:
                if self._down_since is not None:
                    _warn(f"connection restored; journal for {self.key} replayed")
                self._down_since = None
                return True
            if self._down_since is None:
                _warn(f"{reason}; saving to the journal at {self.journal.folder} until it answers")
            self._down_since = time.monotonic()
            return False
        return False

    def _deliver(self, batch: Batch) -> None:
        try:
            if self._attempt(lambda: self.transport.send_batch(self.key, batch)):
                self.sent_points += batch.points()
                return
        except TallymarkError as exc:
            self.errors.append(exc)
            self._refused("a batch", exc.message, batch.points())
            return
        except Exception as exc:  # noqa: BLE001 - a batch that cannot even be encoded can never be sent
            self._refused("a batch", f"{type(exc).__name__}: {exc}", batch.points())
            return
        try:
            body = batch.body()
        except Exception as exc:  # noqa: BLE001
            self._refused("a batch", f"{type(exc).__name__}: {exc}", batch.points())
            return
        try:
            self.journal.append_batch(body)
        except OSError as exc:
            self._warn_once(
                "journal-write",
                f"cannot write the journal at {self.journal.folder} ({exc}); keeping unsent points in "
                "memory and trying again on the next send",
            )
            self._held.append(batch)

    def _deliver_asset(self, meta: dict[str, Any], path: Path, cleanup: bool) -> None:
        name = meta.get("file_name")
        try:
            try:
                if self._attempt(lambda: self.transport.upload_asset(self.key, meta, path)):
                    return
            except TallymarkError as exc:
                self.errors.append(exc)
                self._refused(f"asset {name!r}", exc.message, 0)
                return
            except OSError as exc:
                self.lost_assets.append(f"{name} (cannot read {path}: {exc.strerror or exc})")
                _warn(f"cannot read asset {path}: {exc}")
                return
            try:
                self.journal.append_asset(meta, path)
            except OSError as exc:
                self.lost_assets.append(f"{name} (journal not writable: {exc.strerror or exc})")
                self._warn_once("journal-asset", f"cannot write asset {name!r} to the journal: {exc}")
        finally:
            if cleanup:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def summary(self) -> str | None:
        """One line for ``end()``: what was not saved and where the rest is (None: all stored)."""
        lost = []
        if self.refused:
            lost.append(
                f"{len(self.refused)} request(s) refused by the server ({self.refused_points:,} points; "
                f"first: {self.refused[0]})"
            )
        held = sum(b.points() for b in self._held)
        if self._held:
            lost.append(f"{held:,} points (the journal could not be written)")
        if self.lost_assets:
            lost.append(f"asset(s) {', '.join(self.lost_assets[:3])}")
        parts = []
        if lost:
            parts.append("not saved: " + "; ".join(lost))
        pending = self.journal.pending()
        if pending:
            folder = self.journal.folder
            url = getattr(self.transport, "url", None)
            command = f"tallymark upload {folder}" + (f" --url {url}" if url else "")
            parts.append(
                f"{self.journal.points():,} points ({pending} journal entr{'y' if pending == 1 else 'ies'}) "
                f"are in the journal at {folder}: send them with `{command}` (or the next run against "
                "this server sends them)"
            )
        return f"experiment {self.key}: " + "; ".join(parts) if parts else None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.drain()
            except Exception as exc:  # never let the sender thread die silently
                _warn(f"sender error: {exc!r}")

    def wake(self) -> None:
        self._wake.set()

    def close(self, end: bool) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        self.drain(end=end)
        if self._adopter is not None:
            self._adopter.join(timeout=60)  # a journal half-sent is fine: the next run resumes it


def _stdout_items(chunks: list[tuple[str, str]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cur_stream, parts, size = None, [], 0
    for stream, text in chunks:
        if stream != cur_stream or size > STDOUT_ITEM_BYTES:
            if parts:
                items.append(
                    {
                        "kind": "stdout",
                        "name": "stdout",
                        "data": {"stream": cur_stream, "text": "".join(parts)},
                    }
                )
            cur_stream, parts, size = stream, [], 0
        parts.append(text)
        size += len(text)
    if parts:
        items.append(
            {"kind": "stdout", "name": "stdout", "data": {"stream": cur_stream, "text": "".join(parts)}}
        )
    return items
