"""System metrics sampled in the background while an experiment runs.

:class:`SystemMonitor` runs a daemon thread that, every ``interval`` seconds, reads CPU, memory,
disk, network and load figures through ``psutil`` (and GPU figures through ``pynvml`` when it is
installed) and hands them to a callback as ``{"sys.<name>": float}`` plus a timestamp in ms.
``psutil`` is imported by that thread, not by this module. Nothing in the thread can raise into the
user's program: a missing library or a failing probe only drops the affected metrics.

Example::

    from tallymark.sdk.autolog import SystemMonitor
    mon = SystemMonitor(lambda values, ts: print(ts, values["sys.cpu.percent"]), interval=5)
    mon.start()
    ...                          # training
    mon.stop()                   # returns promptly, even in the middle of an interval

Metric names (rates are per second over the last interval; ``<i>`` is a CPU or GPU index):

- ``sys.cpu.percent``, ``sys.cpu.<i>.percent`` (per core, when ``per_cpu``)
- ``sys.process.cpu_percent`` (may exceed 100 on several cores), ``sys.process.rss_bytes``,
  ``sys.process.num_threads``
- ``sys.memory.used_bytes``, ``sys.memory.available_bytes``, ``sys.memory.percent``
- ``sys.disk.read_bytes_per_s``, ``sys.disk.write_bytes_per_s``, ``sys.disk.usage_percent``
- ``sys.net.sent_bytes_per_s``, ``sys.net.recv_bytes_per_s``
- ``sys.load.1m``, ``sys.load.5m``, ``sys.load.15m`` (not on Windows)
- ``sys.gpu.<i>.utilization_percent``, ``sys.gpu.<i>.memory_used_bytes``,
  ``sys.gpu.<i>.memory_percent``, ``sys.gpu.<i>.temperature_c``, ``sys.gpu.<i>.power_watts``
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SystemMonitor"]


def _debug(message: str, *args: object) -> None:
    import logging  # only on the failure path: keeps this module's import to a few builtins

    logging.getLogger(__name__).debug(message, *args)


class _Sampler:
    """Holds the previous counters so that each sample can report rates. Used by one thread."""

    def __init__(self, per_cpu: bool, disk_path: str) -> None:
        import psutil

        self._psutil = psutil
        self._per_cpu = per_cpu
        self._disk_path = disk_path
        self._process = psutil.Process()
        self._nvml: Any = None
        self._gpu_handles: list[Any] = []
        # The first cpu_percent(None) call only sets the baseline.
        self._try(lambda: psutil.cpu_percent(None))
        if per_cpu:
            self._try(lambda: psutil.cpu_percent(None, percpu=True))
        self._try(lambda: self._process.cpu_percent(None))
        self._last_time = time.monotonic()
        self._last_disk = self._try(psutil.disk_io_counters)
        self._last_net = self._try(psutil.net_io_counters)
        self._init_gpus()

    @staticmethod
    def _try(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            return None

    def _init_gpus(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:
            return
        self._nvml = pynvml
        try:
            self._gpu_handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception:
            self._gpu_handles = []

    def close(self) -> None:
        if self._nvml is not None:
            self._try(self._nvml.nvmlShutdown)
            self._nvml = None

    def sample(self) -> dict[str, float]:
        psutil = self._psutil
        values: dict[str, float] = {}
        now = time.monotonic()
        elapsed = now - self._last_time
        self._last_time = now

        cpu = self._try(lambda: psutil.cpu_percent(None))
        if cpu is not None:
            values["sys.cpu.percent"] = float(cpu)
        if self._per_cpu:
            for i, pct in enumerate(self._try(lambda: psutil.cpu_percent(None, percpu=True)) or []):
                values[f"sys.cpu.{i}.percent"] = float(pct)

        proc = self._process
        proc_cpu = self._try(lambda: proc.cpu_percent(None))
        if proc_cpu is not None:
            values["sys.process.cpu_percent"] = float(proc_cpu)
        mem_info = self._try(proc.memory_info)
        if mem_info is not None:
            values["sys.process.rss_bytes"] = float(mem_info.rss)
        threads = self._try(proc.num_threads)
        if threads is not None:
            values["sys.process.num_threads"] = float(threads)

        vm = self._try(psutil.virtual_memory)
        if vm is not None:
            values["sys.memory.used_bytes"] = float(vm.used)
            values["sys.memory.available_bytes"] = float(vm.available)
            values["sys.memory.percent"] = float(vm.percent)

        disk = self._try(psutil.disk_io_counters)
        if disk is not None and self._last_disk is not None and elapsed > 0:
            self._rate(
                values, "sys.disk.read_bytes_per_s", disk.read_bytes, self._last_disk.read_bytes, elapsed
            )
            self._rate(
                values, "sys.disk.write_bytes_per_s", disk.write_bytes, self._last_disk.write_bytes, elapsed
            )
        self._last_disk = disk
        usage = self._try(lambda: psutil.disk_usage(self._disk_path))
        if usage is not None:
            values["sys.disk.usage_percent"] = float(usage.percent)

        net = self._try(psutil.net_io_counters)
        if net is not None and self._last_net is not None and elapsed > 0:
            self._rate(values, "sys.net.sent_bytes_per_s", net.bytes_sent, self._last_net.bytes_sent, elapsed)
            self._rate(values, "sys.net.recv_bytes_per_s", net.bytes_recv, self._last_net.bytes_recv, elapsed)
        self._last_net = net

        getloadavg = getattr(os, "getloadavg", None)
        load = self._try(getloadavg) if getloadavg is not None else None
        if load is not None:
            values["sys.load.1m"], values["sys.load.5m"], values["sys.load.15m"] = (float(x) for x in load)

        self._sample_gpus(values)
        return values

    @staticmethod
    def _rate(values: dict[str, float], name: str, current: int, previous: int, elapsed: float) -> None:
        delta = current - previous
        if delta >= 0:  # a counter reset (interface down/up, wrap) gives no sample rather than a spike
            values[name] = delta / elapsed

    def _sample_gpus(self, values: dict[str, float]) -> None:
        nvml = self._nvml
        if nvml is None:
            return
        for i, handle in enumerate(self._gpu_handles):
            prefix = f"sys.gpu.{i}."
            util = self._try(lambda h=handle: nvml.nvmlDeviceGetUtilizationRates(h))
            if util is not None:
                values[prefix + "utilization_percent"] = float(util.gpu)
            mem = self._try(lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h))
            if mem is not None:
                values[prefix + "memory_used_bytes"] = float(mem.used)
                if mem.total:
                    values[prefix + "memory_percent"] = 100.0 * float(mem.used) / float(mem.total)
            temp = self._try(lambda h=handle: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
            if temp is not None:
                values[prefix + "temperature_c"] = float(temp)
            power = self._try(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h))  # milliwatts
            if power is not None:
                values[prefix + "power_watts"] = float(power) / 1000.0


class SystemMonitor:
    """Call ``on_sample(values, timestamp_ms)`` every ``interval`` seconds from a daemon thread.

    The first sample comes one interval after ``start()`` (rates need two readings). ``disk_path``
    is the folder whose filesystem ``sys.disk.usage_percent`` describes (default: the cwd at
    ``start()``). ``per_cpu`` adds one ``sys.cpu.<i>.percent`` series per core.
    """

    def __init__(
        self,
        on_sample: Callable[[dict[str, float], int], None],
        interval: float = 10.0,
        *,
        per_cpu: bool = True,
        disk_path: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._on_sample = on_sample
        self.interval = float(interval)
        self._per_cpu = per_cpu
        self._disk_path = disk_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start sampling; a second call while running does nothing."""
        with self._lock:
            if self.running:
                return
            disk_path = self._disk_path
            if disk_path is None:
                try:
                    disk_path = os.getcwd()
                except OSError:
                    disk_path = os.path.abspath(os.sep)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._stop, disk_path),
                name="tallymark-system-monitor",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sampling and wait up to ``timeout`` seconds for the thread to finish."""
        with self._lock:
            self._stop.set()
            thread = self._thread
            self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stop: threading.Event, disk_path: str) -> None:
        try:
            sampler = _Sampler(self._per_cpu, disk_path)
        except Exception as exc:  # psutil missing or unusable: no system metrics, no crash
            _debug("system metrics disabled: %s", exc)
            return
        try:
            while not stop.wait(self.interval):
                try:
                    values = sampler.sample()
                    timestamp_ms = int(time.time() * 1000)
                    if values and not stop.is_set():
                        self._on_sample(values, timestamp_ms)
                except Exception as exc:
                    _debug("system metrics sample failed: %s", exc)
        finally:
            sampler.close()

    def __enter__(self) -> SystemMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
