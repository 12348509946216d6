"""Custom Python panels: a function that turns the compared experiments into a figure.

>>> import tallymark
>>> @tallymark.panel("final AUC")                                   # doctest: +SKIP
... def final_auc(experiments):
...     return {"type": "bar", "x": [e.name for e in experiments],
...             "series": [{"name": "test_auc_roc", "y": [
...                 next(m["valueCurrent"] for m in e.get_metrics_summary() if m["name"] == "test_auc_roc")
...                 for e in experiments]}]}

The function receives a list of :class:`tallymark.sdk.api.APIExperiment` (the experiments on the
compare page, in their order) and returns a figure: a Plotly figure as JSON (a dict with ``data``
and ``layout``, or an object with ``to_plotly_json()``), a Vega-Lite spec (a dict with ``mark`` and
``encoding``), PNG bytes, an object with ``savefig`` (a matplotlib Figure), tallymark's own chart
spec (``{"type": "line" | "bar" | "scatter", "series": [...]}``), a table (``{"columns", "rows"}``
or a pandas DataFrame) or a string. See docs/ui.md for what of Plotly and Vega-Lite is drawn.

Panels are found in three places: functions decorated in code that is already imported, modules
named by the entry point group ``tallymark.panels`` (``[project.entry-points."tallymark.panels"]``
``my_panels = "my_package.panels"``) and every ``*.py`` file in the panels folder (``HOME/panels``
and ``$TALLYMARK_PANELS_DIR``). Folder files are imported again when they change, so editing a
panel and reloading the page shows the new version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["ENTRY_POINT_GROUP", "LoadError", "Panel", "discover", "get", "panel", "registered", "unregister"]

ENTRY_POINT_GROUP = "tallymark.panels"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Panel:
    """A registered panel: its title, the function and where it came from."""

    name: str
    func: Callable[[list[Any]], Any]
    description: str = ""
    source: str = ""


@dataclass(frozen=True)
class LoadError:
    """A panel module or file that failed to import (shown on the compare page)."""

    source: str
    message: str


_lock = threading.RLock()
_registry: dict[str, Panel] = {}
_loading: list[str] = []  # the source being imported (panels registered meanwhile belong to it)
_files: dict[Path, float] = {}  # panels file -> mtime it was imported at
_errors: dict[str, LoadError] = {}
_entry_points_loaded = False


def panel(name: str, *, description: str = "") -> Callable[[F], F]:
    """Register the decorated function as the panel ``name`` (a later registration replaces it)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a panel needs a non-empty name")

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError("@tallymark.panel decorates a function")
        doc = description or (func.__doc__ or "").strip().split("\n")[0]
        with _lock:
            source = _loading[-1] if _loading else getattr(func, "__module__", "")
            _registry[name] = Panel(name, func, doc, source)
        return func

    return decorate


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def registered() -> list[Panel]:
    """Every registered panel, by name."""
    with _lock:
        return sorted(_registry.values(), key=lambda p: p.name.lower())


def get(name: str) -> Panel | None:
    with _lock:
        return _registry.get(name)


def discover(folders: Iterable[Path | str | None] = ()) -> list[LoadError]:
    """Import entry-point panel modules (once) and the ``*.py`` files of ``folders`` (again when
    changed). Returns the load errors so far; a broken file never stops the others."""
    global _entry_points_loaded
    with _lock:
        if not _entry_points_loaded:
            _entry_points_loaded = True
            _load_entry_points()
        for folder in folders:
            if folder is None:
                continue
            path = Path(folder).expanduser()
            if path.is_dir():
                for file in sorted(path.glob("*.py")):
                    _load_file(file)
        return list(_errors.values())


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {ep.name} ({ep.value})"
        _loading.append(source)
        try:
            obj = ep.load()
            if (
                callable(obj)
                and not isinstance(obj, type)
                and not any(p.func is obj for p in _registry.values())
            ):
                _registry[ep.name] = Panel(ep.name, obj, (obj.__doc__ or "").strip().split("\n")[0], source)
            _errors.pop(source, None)
        except Exception as exc:  # a broken plugin must not break the UI
            _errors[source] = LoadError(source, _short_traceback(exc))
        finally:
            _loading.pop()


def _load_file(file: Path) -> None:
    try:
        mtime = file.stat().st_mtime
    except OSError:
        return
    if _files.get(file) == mtime:
        return
    source = str(file)
    for name in [n for n, p in _registry.items() if p.source == source]:
        del _registry[name]
    module_name = "tallymark_panels_" + hashlib.sha256(source.encode()).hexdigest()[:12]
    _loading.append(source)
    try:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        _errors.pop(source, None)
    except Exception as exc:  # a broken panels file must not break the UI
        sys.modules.pop(module_name, None)
        _errors[source] = LoadError(source, _short_traceback(exc))
    finally:
        _loading.pop()
        _files[file] = mtime


def _short_traceback(exc: BaseException, limit: int = 6) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(lines[-limit:])
    return text.strip()


def run(p: Panel, experiments: list[Any]) -> Any:
    """Call the panel (exceptions propagate; the UI catches and shows them)."""
    return p.func(experiments)
