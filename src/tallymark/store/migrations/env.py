"""Alembic environment: always run with a connection handed over by tallymark.store.migrate."""

from alembic import context

from tallymark.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tallymark db upgrade`, not the alembic command")

context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, transactional_ddl=True
)
with context.begin_transaction():
    context.run_migrations()
