"""The endpoint's prediction log: every request's inputs and outputs, kept without slowing the answer.

A record travels: :meth:`PredictionLog.record` (a deque append, in the request's thread) → the
writer thread (batches what is queued into one Arrow record batch, appends it as one frame to the
spool, fdatasync) → the shipper thread (sends each sealed spool segment as one chunk to the store,
``log_predictions``, deletes it once acknowledged). The response never waits for any of it.

What can be lost, and how it is counted (``stats()``; docs/prediction-log.md):

- the queue is full (``queue_rows`` rows waiting for the writer): the record is dropped,
  ``dropped_queue_full``;
- the spool is full (``spool_bytes`` on disk, the store down for long): the batch is dropped,
  ``dropped_spool_full``;
- a record whose arrays do not have the logged shape: ``dropped_invalid``;
- the process dies: what was still queued in memory (at most ``linger`` seconds of records), and a
  frame torn mid-write, which the next process cuts (``recovery``) and never ships.

Each drop cause writes at most one log line per ``log_interval`` seconds, with the counts.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any

from tallymark.serving.predframes import RESERVED
from tallymark.serving.spool import Spool

__all__ = ["RESERVED", "PredictionLog"]

log = logging.getLogger("tallymark.serving.predlog")


class PredictionLog:
    """See the module docstring. ``columns`` are the model's input feature names (the columns of
    ``inputs``); ``outputs`` names the output columns (default ``prediction``, or
    ``prediction_0…`` for 2-D outputs). ``transport`` (tests, the embedded store) overrides the one
    ``settings`` (``url``, ``api_key``, ``home``, ``user``) describe; ``ship=False`` only spools."""

    def __init__(
        self,
        endpoint: str,
        workspace: str,
        spool_dir: Path,
        settings: dict[str, Any],
        columns: list[str],
        queue_rows: int | None = None,
        spool_bytes: int | None = None,
        *,
        outputs: list[str] | None = None,
        transport: Any = None,
        ship: bool = True,
        linger: float = 0.02,
        seal_interval: float = 1.0,
        segment_bytes: int = 4 << 20,
        log_interval: float = 60.0,
        retry_max: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.workspace = workspace
        self.settings = dict(settings)
        client = self._client_settings()
        queue_rows = client.prediction_queue_rows if queue_rows is None else queue_rows
        spool_bytes = client.prediction_spool_bytes if spool_bytes is None else spool_bytes
        self.enabled = spool_bytes > 0
        self.counts = {
            "spooled": 0,
            "shipped": 0,
            "dropped_queue_full": 0,
            "dropped_spool_full": 0,
            "dropped_invalid": 0,
            "rejected_segments": 0,
            "ship_errors": 0,
            "spool_errors": 0,
        }
        if not self.enabled:  # the operator turned the log off: record() does nothing at all
            log.warning("prediction log %s is off (prediction_spool_bytes=0): nothing is logged", endpoint)
            return
        self.features = list(columns)
        self.outputs = list(outputs) if outputs else None
        self.queue_rows = queue_rows
        self.linger = linger
        self.seal_interval = seal_interval
        self.log_interval = log_interval
        self.retry_max = retry_max
        from tallymark.serving import predframes

        head = predframes.header(endpoint, self.features, self.outputs)
        self.spool = Spool(Path(spool_dir), spool_bytes, segment_bytes, header=head)
        self._transport = transport
        self._q: collections.deque[tuple[str, int, int, Any, Any]] = collections.deque()
        self._qlock = threading.Lock()
        self._queued = 0
        self._wake = threading.Event()
        self._ship_wake = threading.Event()
        self._closing = False
        self._stop_shipping = False
        self._last_logged: dict[str, float] = {}
        self._opened_at: float | None = None
        self._schema: Any = None
        rec = self.spool.recovery
        if rec.torn_segments:
            log.warning(
                "prediction log %s: cut a torn tail of %d bytes from %d segment(s) of %s "
                "(an earlier process died mid-write; those bytes are not shipped)",
                endpoint,
                rec.torn_bytes,
                rec.torn_segments,
                spool_dir,
            )
        self._writer = threading.Thread(
            target=self._write_loop, name=f"predlog-writer-{endpoint}", daemon=True
        )
        self._writer.start()
        self._shipper: threading.Thread | None = None
        if ship:
            self._shipper = threading.Thread(
                target=self._ship_loop, name=f"predlog-shipper-{endpoint}", daemon=True
            )
            self._shipper.start()

    # -- the request's side ----------------------------------------------------------------------

    def record(self, request_id: str, at_ms: int, latency_us: int, inputs: Any, outputs: Any) -> None:
        """Queue one request's rows for the log. Never blocks, never raises; the arrays are kept by
        reference (the caller must not change them afterwards)."""
        if not self.enabled:
            return
        try:
            n = len(inputs)
            if n == 0:
                return
            with self._qlock:
                if self._closing or self._queued + n > self.queue_rows:
                    full = True
                else:
                    full = False
                    self._queued += n
            if full:
                self._drop("dropped_queue_full", n)
                return
            self._q.append((request_id, at_ms, latency_us, inputs, outputs))
            if self._queued > self.queue_rows // 2:
                self._wake.set()
        except Exception:  # noqa: BLE001 - a log must never fail a request
            self._drop("dropped_invalid", 1)

    def stats(self) -> dict[str, int]:
        """Rows queued in memory now; rows spooled and shipped by this process; rows dropped (the
        sum, and by cause); segments on disk waiting (``backlog_bytes``) and what opening found."""
        c = dict(self.counts)
        if not self.enabled:
            return {
                "queued": 0,
                **c,
                "dropped": 0,
                "backlog_bytes": 0,
                "recovered_segments": 0,
                "torn_bytes_cut": 0,
            }
        dropped = c["dropped_queue_full"] + c["dropped_spool_full"] + c["dropped_invalid"]
        rec = self.spool.recovery
        return {
            "queued": self._queued,
            **c,
            "dropped": dropped,
            "backlog_bytes": self.spool.used_bytes,
            "recovered_segments": rec.segments,
            "torn_bytes_cut": rec.torn_bytes,
        }

    def close(self, timeout: float = 5.0) -> dict[str, int]:
        """Stop taking records, spool what is queued, ship what the store takes within ``timeout``;
        what is left stays in the spool for the next process on this directory."""
        if not self.enabled:
            return self.stats()
        deadline = time.monotonic() + timeout
        with self._qlock:
            self._closing = True
        self._wake.set()
        self._writer.join(max(0.0, deadline - time.monotonic()))
        if self._shipper is not None:
            self._ship_wake.set()  # one more try now; a store that is down is not hammered
            while self._shipper.is_alive() and time.monotonic() < deadline and self.spool.sealed():
                time.sleep(0.01)
            self._stop_shipping = True
            self._ship_wake.set()
            self._shipper.join(max(0.05, deadline - time.monotonic()))
        if not self._writer.is_alive():
            self.spool.close()
        return self.stats()

    # -- the writer thread -----------------------------------------------------------------------

    def _drop(self, cause: str, rows: int) -> None:
        with self._qlock:  # requests' threads and the writer both count drops
            self.counts[cause] += rows
        now = time.monotonic()
        if now - self._last_logged.get(cause, -1e18) >= self.log_interval:
            self._last_logged[cause] = now
            log.warning(
                "prediction log %s: dropping records (%s): %d rows so far; queued %d, backlog %d bytes",
                self.endpoint,
                cause.removeprefix("dropped_").replace("_", " "),
                self.counts[cause],
                self._queued,
                self.spool.used_bytes,
            )

    def _take(self) -> list[tuple[str, int, int, Any, Any]]:
        items = []
        rows = 0
        while self._q and rows < 8192:
            item = self._q.popleft()
            items.append(item)
            rows += len(item[3])
        with self._qlock:
            self._queued -= rows
        return items

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(self.linger)
            self._wake.clear()
            while self._q:
                self._write(self._take())
            if self.spool.open_frames and self._opened_at is not None:
                if self._closing or time.monotonic() - self._opened_at >= self.seal_interval:
                    self._seal()
            if self._closing and not self._q:
                self._seal()
                return

    def _seal(self) -> None:
        try:
            self.spool.seal()
        except OSError as exc:
            self.counts["spool_errors"] += 1
            log.error("prediction log %s: cannot seal a spool segment: %s", self.endpoint, exc)
        self._opened_at = None
        self._ship_wake.set()

    def _write(self, items: list[tuple[str, int, int, Any, Any]]) -> None:
        try:
            payload, rows, schema = self._encode(items)
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the log
            log.debug("prediction log %s: batch not encodable: %s", self.endpoint, exc)
            good = []
            for it in items:  # find the bad records, keep the rest
                try:
                    self._encode([it])
                    good.append(it)
                except Exception:  # noqa: BLE001
                    self._drop("dropped_invalid", max(1, _len(it[3])))
            if not good:
                return
            payload, rows, schema = self._encode(good)
        if self._schema is not None and schema != self._schema and self.spool.open_frames:
            self._seal()  # one schema per segment, so each shipped chunk is one table
        self._schema = schema
        try:
            ok = self.spool.append(payload)
        except OSError as exc:
            self.counts["spool_errors"] += 1
            self._drop("dropped_spool_full", rows)
            log.error("prediction log %s: spool write failed: %s", self.endpoint, exc)
            return
        if not ok:
            self._drop("dropped_spool_full", rows)
            return
        if self._opened_at is None:
            self._opened_at = time.monotonic()
        self.counts["spooled"] += rows

    def _encode(self, items: list[tuple[str, int, int, Any, Any]]) -> tuple[bytes, int, Any]:
        from tallymark.serving import predframes

        return predframes.encode(items, self.features, self.outputs)

    # -- the shipper thread ----------------------------------------------------------------------

    def _client_settings(self) -> Any:
        from dataclasses import fields

        from tallymark.settings import ClientSettings

        known = {f.name for f in fields(ClientSettings)}
        return ClientSettings.from_env(**{k: v for k, v in self.settings.items() if k in known})

    def _get_transport(self) -> Any:
        if self._transport is None:
            from tallymark.sdk.transport import default_transport

            self._transport = default_transport(settings=self._client_settings())
        return self._transport

    def _ship_loop(self) -> None:
        from tallymark.sdk.transport import TallymarkError, is_refusal

        delay = 0.0
        while not self._stop_shipping:
            if delay:
                self._ship_wake.wait(delay)
            else:
                self._ship_wake.wait(self.seal_interval)
            self._ship_wake.clear()
            if self._stop_shipping:
                return
            for seg in self.spool.sealed():
                if self._stop_shipping:
                    return
                try:
                    rows = self._ship(seg)
                except TallymarkError as exc:
                    self.counts["ship_errors"] += 1
                    if exc.status in (413, 422):  # this chunk was checked and will never be taken
                        dest = self.spool.reject(seg)
                        self.counts["rejected_segments"] += 1
                        log.error(
                            "prediction log %s: the store refused a chunk (%s); kept at %s",
                            self.endpoint,
                            exc,
                            dest,
                        )
                        continue
                    # 401/403/404/415: misconfigured, or the endpoint not registered yet: keep, retry
                    delay = 3 * self.retry_max if is_refusal(exc.status) else self._backoff(delay)
                    self._note_ship_failure(exc)
                    break
                except Exception as exc:  # noqa: BLE001 - the store down: the spool grows, retry
                    self.counts["ship_errors"] += 1
                    delay = self._backoff(delay)
                    self._note_ship_failure(exc)
                    break
                else:
                    self.counts["shipped"] += rows
                    delay = 0.0

    def _backoff(self, delay: float) -> float:
        return min(self.retry_max, max(min(0.5, self.retry_max), delay * 2))

    def _note_ship_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_logged.get("ship", -1e18) >= self.log_interval:
            self._last_logged["ship"] = now
            log.warning(
                "prediction log %s: cannot ship to the store (%s); %d bytes wait in %s",
                self.endpoint,
                exc,
                self.spool.used_bytes,
                self.spool.dir,
            )

    def _ship(self, seg: Path) -> int:
        import pyarrow as pa

        from tallymark.serving import predframes

        frames = self.spool.read(seg)
        spool_id, seq = Spool.name_of(seg)
        try:
            table = predframes.decode_segment(frames)
        except (ValueError, KeyError, pa.ArrowException) as exc:  # damaged on disk: keep it aside
            dest = self.spool.reject(seg)
            self.counts["rejected_segments"] += 1
            log.error(
                "prediction log %s: unreadable spool segment (%s); kept at %s", self.endpoint, exc, dest
            )
            return 0
        if table is None:
            self.spool.remove(seg)
            return 0
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        at = table.column("at")
        import pyarrow.compute as pc

        self._get_transport().call(
            "log_predictions",
            workspace=self.workspace,
            name=self.endpoint,
            spool_id=spool_id,
            seq=seq,
            rows=table.num_rows,
            first_at=int(pc.min(at).as_py()),
            last_at=int(pc.max(at).as_py()),
            data=sink.getvalue().to_pybytes(),
        )
        self.spool.remove(seg)
        return int(table.num_rows)


def _len(x: Any) -> int:
    try:
        return len(x)
    except TypeError:
        return 1
