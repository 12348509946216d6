"""Capture what a run prints while letting the terminal see exactly the same output.

:class:`OutputCapture` replaces ``sys.stdout``/``sys.stderr`` with thin tees: each write goes to the
original stream first, unchanged (partial lines, ``flush()`` calls and return values included), and
then the text is handed to a callback. The callback can never break the user's ``print``: its
exceptions are swallowed, and output it prints itself is not fed back to it.

Example::

    from tallymark.sdk.autolog import OutputCapture
    lines = []
    cap = OutputCapture(lambda stream, text: lines.append((stream, text)))
    cap.start()
    print("epoch 1")             # still shown on the terminal
    cap.stop()                   # lines == [("stdout", "epoch 1"), ("stdout", "\\n")]

Everything else (``isatty()``, ``encoding``, ``fileno()``, ``buffer``…) is delegated to the original
stream, so libraries that probe the terminal behave as before. Writes made directly to
``sys.stdout.buffer`` or to file descriptor 1 bypass Python's streams and are not captured.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["OutputCapture"]

_in_callback = threading.local()


class _Tee:
    """A write-through wrapper around one text stream."""

    def __init__(self, original: Any, name: str, owner: OutputCapture) -> None:
        # object.__setattr__ keeps these off __getattr__'s delegation path.
        object.__setattr__(self, "_original", original)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_active", True)

    def write(self, text: Any) -> Any:
        result = self._original.write(text)  # the user's stream first; its errors are theirs
        if self._active and isinstance(text, str) and text:
            self._owner._emit(self._name, text)
        return result

    def writelines(self, lines: Iterable[Any]) -> None:
        lines = list(lines)  # may be a one-shot iterator; both the stream and the callback need it
        self._original.writelines(lines)
        if self._active:
            text = "".join(s for s in lines if isinstance(s, str))
            if text:
                self._owner._emit(self._name, text)

    def flush(self) -> Any:
        return self._original.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "_original":  # half-built copy (copy.copy, pickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self._original, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._original, name, value)

    def __repr__(self) -> str:
        return f"<tallymark tee of {self._original!r}>"


class OutputCapture:
    """Tee ``sys.stdout`` and ``sys.stderr`` to ``on_text(stream_name, text)`` between start and stop.

    ``stream_name`` is ``"stdout"`` or ``"stderr"``; ``text`` is exactly what was written (not split
    into lines). Calls are serialized by a lock, so ``on_text`` sees one write at a time even when
    several threads print; it should be quick and must not wait for a lock that a printing thread
    may hold. ``start()`` and ``stop()`` are idempotent.
    """

    def __init__(self, on_text: Callable[[str, str], None]) -> None:
        self._on_text = on_text
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._tees: dict[str, _Tee] = {}

    @property
    def active(self) -> bool:
        """Whether capture is running."""
        return bool(self._tees)

    def start(self) -> None:
        """Install the tees around the current ``sys.stdout``/``sys.stderr``."""
        with self._state_lock:
            if self._tees:
                return
            for name in ("stdout", "stderr"):
                original = getattr(sys, name)
                if original is None:  # pythonw / detached processes have no console streams
                    continue
                tee = _Tee(original, name, self)
                self._tees[name] = tee
                setattr(sys, name, tee)

    def stop(self) -> None:
        """Stop capturing and put back the streams that were there at ``start()``.

        If something else replaced a stream after ``start()`` (and may be wrapping our tee), that
        stream is left in place; our tee then just passes writes through to the original.
        """
        with self._state_lock:
            for name, tee in self._tees.items():
                object.__setattr__(tee, "_active", False)
                if getattr(sys, name) is tee:
                    restore = tee._original
                    # Tees of captures stopped out of order are pure pass-throughs now: drop them.
                    while isinstance(restore, _Tee) and not restore._active:
                        restore = restore._original
                    setattr(sys, name, restore)
            self._tees = {}

    def _emit(self, stream: str, text: str) -> None:
        if getattr(_in_callback, "value", False):
            return  # output printed by the callback itself (or by logging inside it): don't loop
        _in_callback.value = True
        try:
            with self._lock:
                self._on_text(stream, text)
        except Exception:
            pass  # a broken callback must never break the user's print (Ctrl-C still propagates)
        finally:
            _in_callback.value = False

    def __enter__(self) -> OutputCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
