"""Database engines for the metadata store: SQLite (embedded default, WAL) and PostgreSQL.

Writes go through :meth:`Database.write`: one writer at a time per process (a lock), and on SQLite
``BEGIN IMMEDIATE`` so writers in other processes queue on the busy timeout instead of failing with
"database is locked" halfway through a transaction. Reads use plain transactions and, thanks to WAL,
never wait for writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, StaticPool


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """An engine plus the write discipline described in the module docstring.

    >>> db = Database("sqlite:///:memory:")
    >>> with db.read() as conn: ...
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._write_lock = threading.RLock()
        if self.dialect == "sqlite":
            memory = parsed.database in (None, "", ":memory:")
            extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": 60, "check_same_thread": False}, **extra
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        elif self.dialect == "postgresql":
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://…")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back entirely on any error."""
        with self._write_lock, self.engine.connect() as conn:
            conn.info["immediate"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["immediate"] = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def throwaway_engine(url: str) -> Engine:
    """An engine that keeps no pooled connections (for migrations and one-off checks)."""
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_on_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")


def upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str] | None
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update… (or DO NOTHING when update is None)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)
