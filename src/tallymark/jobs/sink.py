"""A :class:`~tallymark.jobs.spec.JobSink` that reports to the store through the SDK transport.

>>> sink = StoreSink(sink_settings(), "risk", "prep-2026-12-02-01-55-03-123")   # doctest: +SKIP

Built from plain, picklable arguments (``settings``: the client settings that matter —
``url``, ``api_key``, ``home``, ``user`` — as a dict), so a Dask worker can build one for a job
submitted elsewhere. Output is shipped in numbered chunks (a resent chunk is a no-op in the store):
at once while shipments are rare (a burst of up to three, so a job's first lines are readable as
soon as they are printed), then at most one chunk a second while output keeps coming, or as soon
as 256 KiB are waiting (then the caller waits for the shipment: a script printing faster than the
store takes it is slowed, never buffered without bound). A store that cannot be reached is retried
for a while; chunks it still refuses are counted in ``lost`` (the whole output stays in the job
root's ``logs/output.log``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["StoreSink", "sink_settings"]

FLUSH_BYTES = 256 * 1024
BURST = 3  # shipments that may go back to back before the one-a-second pace
FLUSH_SECONDS = 1.0
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def sink_settings(settings: Any = None) -> dict[str, Any]:
    """The client settings a sink (or a job's supervisor) needs, as a picklable dict."""
    from tallymark.settings import ClientSettings

    s = settings or ClientSettings.from_env()
    return {"url": s.url, "api_key": s.api_key, "home": str(s.home_path), "user": s.user}


class StoreSink:
    """Ships a job's output, status and stop checks to the store (see module)."""

    def __init__(
        self,
        settings: dict[str, Any],
        workspace: str,
        job_name: str,
        *,
        flush_bytes: int = FLUSH_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.settings = dict(settings)
        self.workspace, self.job_name = workspace, job_name
        self.flush_bytes, self.flush_seconds = flush_bytes, flush_seconds
        self.attempt = 1
        self.lost = 0  # bytes the store never took
        self._buf = bytearray()
        self._buf_lock = threading.Lock()  # guards _buf
        self._ship_lock = threading.Lock()  # one shipment at a time, in order
        self._seq: int | None = None
        self._transport: Any = None
        self._transport_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closing = threading.Event()
        self._wake = threading.Event()  # output arrived in an empty buffer
        self._tokens = float(BURST)  # shipments the flusher may make now (refilled one a flush_seconds)
        self._tokens_at = time.monotonic()
        self._stop_requested = False
        self.local_stop = threading.Event()  # set by a supervisor's signal handler, say

    def __getstate__(self) -> dict[str, Any]:  # picklable: only the arguments travel
        return {
            "settings": self.settings,
            "workspace": self.workspace,
            "job_name": self.job_name,
            "flush_bytes": self.flush_bytes,
            "flush_seconds": self.flush_seconds,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        s = dict(state)
        self.__init__(  # type: ignore[misc]
            s.pop("settings"), s.pop("workspace"), s.pop("job_name"), **s
        )

    @property
    def transport(self) -> Any:
        if self._transport is None:
            with self._transport_lock:
                if self._transport is None:
                    from tallymark.sdk.transport import default_transport
                    from tallymark.settings import ClientSettings

                    client = ClientSettings.from_env().with_overrides(
                        **{k: v for k, v in self.settings.items() if v}
                    )
                    self._transport = default_transport(settings=client)
        return self._transport

    def _call(self, op: str, **kw: Any) -> Any:
        from tallymark.sdk.transport import Unavailable

        for delay in (*RETRY_DELAYS, None):
            try:
                return self.transport.call(op, workspace=self.workspace, name=self.job_name, **kw)
            except Unavailable:
                if delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- JobSink --------------------------------------------------------------------------------

    def log(self, data: bytes) -> None:
        if not data:
            return
        with self._buf_lock:
            was_empty = not self._buf
            self._buf += data
            big = len(self._buf) >= self.flush_bytes
        if self._flusher is None or not self._flusher.is_alive():
            self._start_flusher()
        if was_empty:
            self._wake.set()
        if big:
            self.flush()

    def status(self, **fields: Any) -> dict[str, Any]:
        if "attempt" in fields and isinstance(fields["attempt"], int):
            self.attempt = fields["attempt"]
        out: dict[str, Any] = self._call("job_status", fields=fields)
        if out.get("stop_requested"):
            self._stop_requested = True
        return out

    def should_stop(self) -> bool:
        if self._stop_requested or self.local_stop.is_set():
            return True
        job = self._call("get_job")
        self._stop_requested = job.get("stop_requested_at") is not None
        return self._stop_requested

    def close(self) -> None:
        """Ship what is buffered and stop the flusher (a later :meth:`log` starts it again)."""
        self._closing.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=30)
        self._flusher = None
        self.flush()

    def close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- shipping -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Ship the buffered output now (in order; waits for a shipment already under way)."""
        with self._ship_lock:
            while True:
                with self._buf_lock:
                    if not self._buf:
                        return
                    data = bytes(self._buf[: 1 << 20])
                    del self._buf[: len(data)]
                self._ship(data)

    def _ship(self, data: bytes) -> None:
        from tallymark.sdk.transport import TallymarkError, Unavailable

        try:
            if self._seq is None:
                self._seq = int(self._call("get_job").get("log_next_seq", 0))
            self._call("job_log", seq=self._seq, attempt=self.attempt, data=data)
            self._seq += 1
        except (TallymarkError, Unavailable, OSError):
            self.lost += len(data)

    def _start_flusher(self) -> None:
        self._closing.clear()
        t = threading.Thread(target=self._flush_loop, name="tallymark-job-log", daemon=True)
        self._flusher = t
        t.start()

    def _flush_loop(self) -> None:
        # A token bucket: output ships at once while shipments are rare (BURST of them), and at
        # most one per flush_seconds while it keeps coming (each is a store write and an audit entry).
        while not self._closing.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closing.is_set():
                return
            with self._buf_lock:
                if not self._buf:
                    continue
            while (wait := self._take_token()) > 0:
                if self._closing.wait(wait):
                    return
            self.flush()

    def _take_token(self) -> float:
        """0 when a shipment may go now (one token taken), else the seconds until one may."""
        now = time.monotonic()
        self._tokens = min(float(BURST), self._tokens + (now - self._tokens_at) / self.flush_seconds)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) * self.flush_seconds
