"""The source code an experiment ran: the entry script, or the cells executed in a notebook.

Example::

    from tallymark.sdk.autolog import collect_code
    code = collect_code()                  # {"file_name": "train.py", "source": "...", "kind": "script"}
    collect_code("configs/model.yaml")     # an explicit file: kind "file"

Without a path, ``collect_code`` never raises: it returns ``None`` when there is nothing to record
(``python -c``, a plain REPL, a frozen app, a script over :data:`MAX_CODE_BYTES`). Inside
IPython/Jupyter it returns the cells executed so far, in order, as one Python text.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["MAX_CODE_BYTES", "CodeTooLargeError", "collect_code", "entry_script_path"]

#: Largest source file recorded.
MAX_CODE_BYTES = 10 * 1024 * 1024


class CodeTooLargeError(ValueError):
    """An explicitly requested code file is larger than :data:`MAX_CODE_BYTES`."""


def entry_script_path() -> str | None:
    """Absolute path of the script Python was started with (``python x.py`` / ``python -m pkg``)."""
    main = sys.modules.get("__main__")
    candidates = [getattr(main, "__file__", None)]
    if sys.argv and sys.argv[0] not in ("", "-c", "-m"):
        candidates.append(sys.argv[0])
    for candidate in candidates:
        if not candidate or not isinstance(candidate, str):
            continue
        try:
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
        except (OSError, ValueError):
            continue
    return None


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # PEP 263 lets a .py file declare another encoding in its first two lines.
        import io
        import tokenize

        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            return data.decode(encoding, "replace")
        except (SyntaxError, LookupError):
            return data.decode("utf-8", "replace")


def _read(path: str) -> str:
    size = os.stat(path).st_size
    if size > MAX_CODE_BYTES:
        raise CodeTooLargeError(
            f"{path} is {size} bytes; tallymark records code files up to {MAX_CODE_BYTES} bytes (10 MB)"
        )
    with open(path, "rb") as fh:
        data = fh.read(MAX_CODE_BYTES + 1)
    if len(data) > MAX_CODE_BYTES:  # the file grew between stat() and read()
        raise CodeTooLargeError(f"{path} exceeds {MAX_CODE_BYTES} bytes (10 MB)")
    return _decode(data)


def _ipython_shell() -> Any:
    """The running IPython shell, or ``None``; never imports IPython itself."""
    if "IPython" not in sys.modules:
        return None
    try:
        get_ipython = sys.modules["IPython"].get_ipython
        return get_ipython()
    except Exception:
        return None


def _notebook_cells(shell: Any) -> list[str]:
    cells: list[str] | None = None
    try:
        cells = list(shell.history_manager.input_hist_raw)
    except Exception:
        cells = None
    if not cells:
        try:
            cells = list(shell.user_ns.get("In", []))
        except Exception:
            cells = []
    return [c for c in cells if isinstance(c, str) and c.strip()]


def _notebook_name(shell: Any) -> str:
    candidates: list[Any] = []
    try:
        candidates.append(shell.user_ns.get("__vsc_ipynb_file__"))  # set by VS Code
    except Exception:
        pass
    candidates.append(os.environ.get("JPY_SESSION_NAME"))  # set by jupyter_server >= 2 for kernels
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return os.path.basename(candidate.strip())
    return "notebook.ipynb"


def _collect_notebook(shell: Any) -> dict[str, Any] | None:
    cells = _notebook_cells(shell)
    if not cells:
        return None
    parts = [f"# In[{i}]:\n{cell.rstrip()}\n" for i, cell in enumerate(cells, start=1)]
    source = "\n\n".join(parts)
    if len(source.encode("utf-8", "replace")) > MAX_CODE_BYTES:
        return None
    return {"file_name": _notebook_name(shell), "source": source, "kind": "notebook", "path": None}


def collect_code(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """Return ``{"file_name", "source", "kind", "path"}`` for the code of this run.

    ``kind`` is ``"file"`` for an explicit ``path``, ``"notebook"`` inside IPython/Jupyter
    (``source`` is the executed cells), ``"script"`` for the entry script. An explicit ``path``
    that is missing or unreadable raises ``OSError``; one over 10 MB raises
    :class:`CodeTooLargeError`. Without ``path`` this never raises and may return ``None``.
    """
    if path is not None:
        p = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if os.path.isdir(p):
            raise IsADirectoryError(f"{p} is a folder; log_code records one file")
        return {"file_name": os.path.basename(p), "source": _read(p), "kind": "file", "path": p}
    try:
        shell = _ipython_shell()
        if shell is not None:
            return _collect_notebook(shell)
        script = entry_script_path()
        if script is None:
            return None
        return {
            "file_name": os.path.basename(script),
            "source": _read(script),
            "kind": "script",
            "path": script,
        }
    except Exception:
        return None
