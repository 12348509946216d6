"""Semantic version numbers for artifact and model versions: explicit and new, or the next major."""

from __future__ import annotations

from sqlalchemy import Column, Connection, Table, func, select

from tallymark.service.errors import Conflict, Invalid
from tallymark.service.models import SEMVER_RE


def parse(version: str) -> tuple[int, int, int]:
    m = SEMVER_RE.match(version)
    if not m:
        raise Invalid(f"{version!r} is not a version (MAJOR.MINOR.PATCH)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def allocate(
    conn: Connection, table: Table, owner: Column, owner_id: int, requested: str | None, what: str
) -> tuple[str, int, int, int]:
    """The version to create under ``owner_id``: ``requested`` if it is new (versions are immutable),
    else the next major (1.0.0, 2.0.0, …). The caller holds a lock on the owner row."""
    if requested is not None:
        major, minor, patch = parse(requested)
        clash = conn.execute(
            select(table.c.id).where(owner == owner_id, table.c.version == requested)
        ).first()
        if clash is not None:
            raise Conflict(f"{what} already has version {requested}; versions are immutable")
    else:
        top = conn.execute(select(func.max(table.c.major)).where(owner == owner_id)).scalar()
        major, minor, patch = (top or 0) + 1, 0, 0
    return f"{major}.{minor}.{patch}", major, minor, patch
