"""Schema migrations: the migrated schema equals the code's tables, and newer schemas are refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from tallymark.store import migrate
from tallymark.store.db import throwaway_engine
from tallymark.store.schema import metadata


def test_head_constant_matches_alembic():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_current_head() == migrate.SCHEMA_HEAD
    assert {r.revision for r in script.walk_revisions()} == set(migrate.KNOWN_REVISIONS)


def test_migrated_schema_matches_the_tables(db_url):
    engine = throwaway_engine(db_url)
    try:
        assert migrate.upgrade(engine) == (None, migrate.SCHEMA_HEAD)
        assert migrate.upgrade(engine) == (migrate.SCHEMA_HEAD, migrate.SCHEMA_HEAD)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py changed without a migration: {diff}"
    finally:
        engine.dispose()


def test_refuses_a_newer_schema(db_url):
    engine = throwaway_engine(db_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        with pytest.raises(migrate.SchemaError, match="newer"):
            migrate.upgrade(engine)
        with pytest.raises(migrate.SchemaError, match="newer"):
            migrate.check(engine)
    finally:
        engine.dispose()


def test_check_asks_for_upgrade_on_an_empty_database(db_url):
    engine = throwaway_engine(db_url)
    try:
        with pytest.raises(migrate.SchemaError, match="db upgrade"):
            migrate.check(engine)
    finally:
        engine.dispose()
