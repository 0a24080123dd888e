"""Alembic environment: `Store.migrate()` runs it with the connection (and transaction) it already holds."""

from __future__ import annotations

from alembic import context

from bot.store import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is not None:
    # The caller owns the transaction (and, on PostgreSQL, the advisory lock held inside it).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    # Run without a handed-over connection (e.g. `alembic revision --autogenerate` against a scratch database):
    # use Store's engine so SQLite gets the same transactional DDL and pragmas as the service.
    from bot.config import get_settings
    from bot.store import Store

    store = Store(config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url)
    try:
        with store.engine.begin() as conn:
            context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        store.close()
