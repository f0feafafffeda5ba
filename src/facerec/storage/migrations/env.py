"""Alembic environment: runs on the connection handed over by ``upgrade_database()``.

There is no ``alembic.ini``: :func:`facerec.storage.migrate.alembic_config` builds the config and
puts the open connection (already in a locked transaction) into ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection) or context.is_offline_mode():
        raise RuntimeError("run migrations with facerec.storage.migrate.upgrade_database()")
    context.configure(
        connection=connection,
        # SQLite cannot ALTER most things: later migrations use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
