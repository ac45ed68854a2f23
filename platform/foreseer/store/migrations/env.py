"""Alembic environment for Foreseer's tables: its own version table, an engine or URL from the caller."""

from alembic import context
from sqlalchemy import create_engine

from foreseer.store import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")


def _run(connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
