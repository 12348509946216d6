"""The background sender: ships what the experiment buffered, in batches, off the training thread.

Every ``interval`` seconds (and on ``flush()``) it takes what is buffered, packs metric points into
columns and sends one batch (large backlogs are split). A batch that cannot be delivered is retried
with exponential backoff; when the server stays unreachable, batches go to the on-disk journal and
are replayed, in order, once it answers again. Every batch carries a fresh id, so a retry or a replay
never applies twice.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tallymark.sdk.journal import Journal
from tallymark.sdk.transport import TallymarkError, Unavailable
from tallymark.sdk.wire import Batch, Columns, MetricBuffer

MAX_POINTS_PER_BATCH = 500_000
STDOUT_ITEM_BYTES = 1 << 20
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def _warn(msg: str) -> None:
    # Write to the real stderr: the captured one would send our warning back to the server.
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(f"tallymark: {msg}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class Sender:
    def __init__(
        self,
        transport: Any,
        key: str,
        journal: Journal,
        offline: bool,
        interval: float = 1.0,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.transport = transport
        self.key = key
        self.journal = journal
        self.offline = offline
        self.interval = interval
        self.retry_delays = retry_delays
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
        self.sent_points = 0
        self.before_first_send: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"tallymark-sender-{key[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

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
        b.metrics, more = self._take_metrics(MAX_POINTS_PER_BATCH)
        return b, assets, more

    def drain(self, end: bool = False) -> None:
        """Send everything buffered so far (in the calling thread); with end=True, end the experiment."""
        with self._send_lock:
            if self.before_first_send is not None:
                hook, self.before_first_send = self.before_first_send, None
                hook()
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

    def _attempt(self, fn: Callable[[], Any]) -> bool:
        """Run fn with retries; True when delivered, False when the server is unreachable."""
        if self.offline:
            return False
        if self._down_since is not None and time.monotonic() - self._down_since < 5.0:
            return False  # known down: journal at once, try again in a few seconds
        for delay in (*self.retry_delays, None):
            try:
                if self.journal.pending():
                    self.journal.replay(self.transport, self.key)
                fn()
                if self._down_since is not None:
                    _warn(f"connection restored; journal for {self.key} replayed")
                self._down_since = None
                return True
            except Unavailable as exc:
                if delay is None:
                    if self._down_since is None:
                        _warn(f"{exc}; saving to the journal at {self.journal.folder} until it answers")
                    self._down_since = time.monotonic()
                    return False
                time.sleep(delay)
        return False

    def _deliver(self, batch: Batch) -> None:
        try:
            if not self._attempt(lambda: self.transport.send_batch(self.key, batch)):
                self.journal.append_batch(batch.body())
            self.sent_points += batch.points()
        except TallymarkError as exc:
            self.errors.append(exc)
            _warn(f"the server refused a batch of experiment {self.key}: {exc.message}")

    def _deliver_asset(self, meta: dict[str, Any], path: Path, cleanup: bool) -> None:
        try:
            if not self._attempt(lambda: self.transport.upload_asset(self.key, meta, path)):
                self.journal.append_asset(meta, path)
        except TallymarkError as exc:
            self.errors.append(exc)
            _warn(f"the server refused asset {meta.get('file_name')!r}: {exc.message}")
        except OSError as exc:
            _warn(f"cannot read asset {path}: {exc}")
        finally:
            if cleanup:
                try:
                    os.unlink(path)
                except OSError:
                    pass

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
