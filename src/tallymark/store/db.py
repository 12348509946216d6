"""Database engines for the metadata store: SQLite (embedded default, WAL) and PostgreSQL.

Writes go through :meth:`Database.write`: one writer at a time per process (a lock), and on SQLite
``BEGIN IMMEDIATE`` so writers in other processes queue on the busy timeout instead of failing with
"database is locked" halfway through a transaction. Reads use plain transactions and, thanks to WAL,
never wait for writers.

A SQLite file this process cannot write (a ``chmod -R a-w`` home, a read-only mount, a backup on a
read-only medium) is opened read-only instead of failing: WAL cannot be switched on there and the
``-shm`` file cannot be created, so the file is opened with ``mode=ro`` when its WAL files are there
to be read, else ``immutable=1`` (nothing can change it while nobody can write it). Every read works;
:meth:`Database.write` then raises :class:`ReadOnlyDatabase` naming the file, before touching it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, CursorResult, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, StaticPool

from tallymark.extras import require


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            require("psycopg", "server", "a PostgreSQL database")
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class ReadOnlyDatabase(OSError):
    """A write was asked of a database this process can only read (an OSError, like EROFS)."""


def _sqlite_read_only(path: str) -> str | None:
    """Why the SQLite file at ``path`` cannot be written by this process, or None if it can."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.exists(path):
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            return f"the folder {folder} is read-only and holds no database yet"
        return None
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return f"{path} is not writable by this process"
    if not os.access(folder, os.W_OK | os.X_OK):  # SQLite must create -wal/-shm/-journal beside it
        return f"the folder {folder} is not writable by this process"
    return None


def _sqlite_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to a database in a folder this process cannot write."""
    uri = "file:" + quote(os.path.abspath(path))
    wal = path + "-wal"
    # With a WAL file present, immutable=1 would ignore the commits still in it: read them (mode=ro,
    # which needs the -shm file to exist). Without one, the main file is the whole database.
    if os.path.exists(wal) and os.path.getsize(wal) > 0 and os.path.exists(path + "-shm"):
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error:
            pass
    return sqlite3.connect(uri + "?immutable=1", uri=True, timeout=60, check_same_thread=False)


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
        self.read_only: str | None = None  # why this process cannot write the database, if it cannot
        if self.dialect == "sqlite":
            memory = parsed.database in (None, "", ":memory:")
            extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
            if not memory and not str(parsed.database).startswith("file:"):
                path = str(parsed.database)
                self.read_only = _sqlite_read_only(path)
                if self.read_only is not None:
                    if not os.path.exists(path):
                        raise ReadOnlyDatabase(f"cannot create the database {path}: {self.read_only}")
                    extra["creator"] = lambda: _sqlite_reader(path)
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": 60, "check_same_thread": False}, **extra
            )
            on_connect = _sqlite_on_connect_read_only if self.read_only else _sqlite_on_connect
            event.listen(self.engine, "connect", on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        elif self.dialect == "postgresql":
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://…")

    def require_writable(self) -> None:
        """Raise :class:`ReadOnlyDatabase` (naming the reason) unless this process may write."""
        if self.read_only is not None:
            raise ReadOnlyDatabase(
                f"the database {make_url(self.url).database} can be read but not written: {self.read_only}"
            )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back entirely on any error."""
        self.require_writable()
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


def _sqlite_on_connect_read_only(dbapi_conn: Any, _record: Any) -> None:
    # No journal_mode=WAL here: switching modes is a write, and the mode is stored in the file anyway.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")


def inserted_id(result: CursorResult) -> int:
    """The primary key of the row a single-row INSERT just wrote.

    SQLAlchemy types ``inserted_primary_key`` as optional: it is None only for statements that are
    not a single-row INSERT, which no caller runs, so None here is a programming error.
    """
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("inserted_id() needs the result of a single-row INSERT")
    return int(key[0])


def upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str] | None
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update… (or DO NOTHING when update is None)."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    # Both dialects' Insert have the same on_conflict_* API but are distinct classes to mypy.
    stmt: postgresql.Insert | sqlite.Insert
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        stmt = sqlite.insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)
