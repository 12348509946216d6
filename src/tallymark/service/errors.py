"""Errors of the service layer; each maps to one HTTP status and the one JSON error shape
``{"error": {"code", "message", "detail"}}``."""

from __future__ import annotations

import errno
from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class Invalid(ServiceError):
    status = 422
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class DiskFull(ServiceError):
    """The store's disk (or quota) is full: nothing of the request was kept; retry once there is room."""

    status = 507
    code = "disk_full"


class ReadOnlyStore(ServiceError):
    """The store can be read but not written (a read-only home, file system or database)."""

    status = 503
    code = "read_only"


# SQLite's extended result codes for "full" and "read-only", and PostgreSQL's SQLSTATE disk_full.
_SQLITE_FULL = 13
_SQLITE_READONLY = 8
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def storage_error(exc: BaseException, what: str) -> ServiceError | None:
    """The :class:`DiskFull` or :class:`ReadOnlyStore` that ``exc`` really is, else None.

    ``what`` names what could not be written ("the database", "the uploaded file …"); the message
    keeps the driver's own words so the cause is never hidden behind a generic one.

    >>> storage_error(OSError(errno.ENOSPC, "No space left on device"), "blob x").status
    507
    """
    from tallymark.store.db import ReadOnlyDatabase

    if isinstance(exc, ReadOnlyDatabase):  # its message names the file and why, nothing to add
        return ReadOnlyStore(str(exc), {"what": what, "cause": str(exc)})
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        found = _classify(cur)
        if found is not None:
            kind, cause = found
            detail = {"what": what, "cause": cause}
            if kind == "full":
                return DiskFull(f"the server's disk is full: could not write {what} ({cause})", detail)
            return ReadOnlyStore(f"the store is read-only: could not write {what} ({cause})", detail)
        # SQLAlchemy keeps the driver's error in .orig; `raise … from` keeps it in __cause__.
        # __context__ is not followed: an unrelated error raised while handling ENOSPC is not ENOSPC.
        cur = getattr(cur, "orig", None) or cur.__cause__
    return None


def _classify(exc: BaseException) -> tuple[str, str] | None:
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc)
        if (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in text:
            return "full", f"sqlite: {text}"
        if (code is not None and code & 0xFF == _SQLITE_READONLY) or "readonly database" in text:
            return "readonly", f"sqlite: {text}"
        return None
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if sqlstate == _PG_DISK_FULL:
        return "full", f"postgresql: {str(exc).strip()}"
    if isinstance(exc, OSError):
        if exc.errno in _NO_SPACE:
            return "full", str(exc)
        if exc.errno == errno.EROFS:
            return "readonly", str(exc)
    return None
