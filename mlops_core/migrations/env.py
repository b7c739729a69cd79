"""Alembic's environment for the stores: migrations run on the connection ``upgrade`` holds locked."""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
