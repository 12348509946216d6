"""Schema migrations: upgrade a store, and refuse to run against a schema newer than this code.

The current head is :data:`SCHEMA_HEAD`; tests/test_migrations.py checks it matches Alembic's head
and that a migrated database equals the tables in :mod:`tallymark.store.schema`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:  # alembic is imported lazily: most commands never migrate
    from alembic.config import Config

SCHEMA_HEAD = "0008_jobs_endpoints"
KNOWN_REVISIONS = (
    "0001_initial",
    "0002_artifacts_registry",
    "0003_import_sessions",
    "0004_closed_versions",
    "0005_governance",
    "0006_audit",
    "0007_sessions",
    "0008_jobs_endpoints",
)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaError(RuntimeError):
    """The database's schema is not one this version of tallymark can use."""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _config(connection: object) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _revision_in(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the head. Returns (revision before, revision after).

    Safe when several processes start on a fresh store at once: the migration runs inside a
    write-locked transaction (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock) and the
    revision is read again once the lock is held.
    """
    before = current_revision(engine)
    if before == SCHEMA_HEAD:
        return before, before
    _refuse_unknown(before)
    from alembic import command

    with engine.connect() as conn:
        conn.info["immediate"] = True
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7263519)"))
            before = _revision_in(conn)
            _refuse_unknown(before)
            if before != SCHEMA_HEAD:
                command.upgrade(_config(conn), "head")
        conn.info["immediate"] = False
    return before, SCHEMA_HEAD


def _refuse_unknown(revision: str | None) -> None:
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise SchemaError(
            f"the database schema is at revision {revision!r}, newer than this tallymark knows "
            f"(head {SCHEMA_HEAD!r}); upgrade tallymark instead of downgrading the database"
        )


def check(engine: Engine) -> None:
    """Raise SchemaError unless the database is exactly at the head revision."""
    rev = current_revision(engine)
    if rev == SCHEMA_HEAD:
        return
    if rev is None:
        raise SchemaError("the database has no tallymark schema; run `tallymark db upgrade`")
    if rev in KNOWN_REVISIONS:
        raise SchemaError(f"the database schema is at {rev!r}; run `tallymark db upgrade`")
    raise SchemaError(f"the database schema {rev!r} is newer than this tallymark (head {SCHEMA_HEAD!r})")
