"""Optional dependencies: import them where they are used, or say which extra to install.

``pip install tallymark`` is kept light for a notebook that only logs (the SDK, the embedded store
and the CLI). The web server, PostgreSQL and S3 drivers, the jobs backends, the endpoints and the
demo's ML stack come as extras (``tallymark[server]``, ``[jobs]``, ``[serving]``, ``[demo]``,
``[all]``). A user who reaches one of those parts without the extra should read a sentence that
names the command to run, not a traceback ending in ``ModuleNotFoundError: No module named
'uvicorn'``; :func:`require` gives that sentence and the CLI prints it as its error.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "require", "require_extra"]

# The import names each extra provides, checked by require_extra (what a part needs before it starts,
# so a server does not open the store and then fail on its first import).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "starlette", "uvicorn", "multipart"),
    "jobs": ("dask", "distributed", "xgboost", "pandas", "pyarrow"),
    "serving": ("xgboost", "pyarrow"),
    "demo": ("pandas", "pyarrow", "sklearn", "xgboost"),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str, what: str) -> None:
        self.module = module
        self.extra = extra
        self.what = what
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install 'tallymark[{extra}]'",
            name=module,
        )


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` and return it, or raise :class:`MissingExtra` naming ``tallymark[extra]``.

    ``what`` is the part of tallymark that needs it, as the user knows it ("tallymark server",
    "an s3:// blob store"). Only a missing module (or a missing dependency of it) becomes
    :class:`MissingExtra`; an installed module that fails to import for another reason raises
    its own error, which is the more useful one then.
    """
    try:
        return importlib.import_module(module)
    except MissingExtra:
        raise
    except ModuleNotFoundError as exc:
        raise MissingExtra(exc.name or module, extra, what) from exc


def require_extra(extra: str, what: str) -> None:
    """Import every module of :data:`EXTRAS` ``[extra]``; raise :class:`MissingExtra` for the first
    one missing."""
    for module in EXTRAS[extra]:
        require(module, extra, what)
