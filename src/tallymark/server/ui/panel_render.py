"""Running a custom panel on the server: find it, hand it the experiments, convert its figure.

The panel gets :class:`~tallymark.sdk.api.APIExperiment` objects reading the server's own store
(no HTTP round trip). Whatever goes wrong — the panel raises, returns something we cannot draw, or
runs past the time limit — becomes ``{"ok": false, "error": …}`` for that panel alone.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from tallymark import panels
from tallymark.sdk.api import APIExperiment
from tallymark.sdk.transport import LocalTransport
from tallymark.server.ui.figures import FigureError, to_figure
from tallymark.service.caller import Caller
from tallymark.service.store import Store

TIMEOUT_S = 30.0


class StoreTransport(LocalTransport):
    """The SDK's local transport over a store someone else owns (the server's), reading as the
    request's caller (a panel sees only what the one who opened the page may see)."""

    def __init__(self, store: Store, caller: Caller) -> None:
        self.settings = store.settings
        self._store = store
        self.caller = caller

    def close(self) -> None:  # the app closes its store
        pass


def panel_folders(settings: Any) -> list[Path]:
    """``HOME/panels`` and the ``panels_dir`` setting (``$TALLYMARK_PANELS_DIR``)."""
    folders = [settings.home_path / "panels"]
    if settings.panels_dir:
        folders.append(Path(settings.panels_dir).expanduser())
    return list(dict.fromkeys(folders))


def discover(store: Store) -> list[panels.LoadError]:
    return panels.discover(panel_folders(store.settings))


def listing(store: Store) -> dict[str, Any]:
    errors = discover(store)
    return {
        "panels": [
            {"name": p.name, "description": p.description, "source": p.source} for p in panels.registered()
        ],
        "errors": [{"source": e.source, "message": e.message} for e in errors],
    }


def render(
    store: Store, caller: Caller, name: str, keys: list[str], timeout: float = TIMEOUT_S
) -> dict[str, Any]:
    """Run panel ``name`` over the experiments ``keys``: ``{"name", "ok", "figure" | "error", "ms"}``."""
    discover(store)
    p = panels.get(name)
    if p is None:
        return {"name": name, "ok": False, "error": f"no panel named {name!r}"}
    started = time.perf_counter()
    transport = StoreTransport(store, caller)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tallymark-panel")
    try:
        from tallymark.service.ui_reads import experiments_by_keys

        infos = experiments_by_keys(store, caller, keys)
        exps = [APIExperiment(transport, info) for info in infos]
        future = pool.submit(lambda: to_figure(panels.run(p, exps)))
        figure = future.result(timeout=timeout)
        return {"name": name, "ok": True, "figure": figure, "ms": _ms(started)}
    except FutureTimeout:
        return {
            "name": name,
            "ok": False,
            "error": f"the panel took longer than {timeout:g} s",
            "ms": _ms(started),
        }
    except FigureError as exc:
        return {"name": name, "ok": False, "error": str(exc), "ms": _ms(started)}
    except Exception as exc:
        return {
            "name": name,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": user_traceback(exc),
            "ms": _ms(started),
        }
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# Frames of ours between the page and the panel's code: left out of the traceback a user sees.
_OUR_FILES = ("tallymark/panels.py", "tallymark/server/ui/panel_render.py", "tallymark/server/ui/figures.py")


def user_traceback(exc: BaseException, limit: int = 12) -> str:
    """The traceback from the panel's own code on (our calling frames left out)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.replace("\\", "/").endswith(_OUR_FILES) and "concurrent/futures" not in f.filename
    ][-limit:]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
