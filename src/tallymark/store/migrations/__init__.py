"""Alembic migrations of the metadata schema (run with `tallymark db upgrade`)."""
