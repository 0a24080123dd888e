"""Alembic environment: run from code by `Store.migrate()` with the connection it hands over."""

from __future__ import annotations

from alembic import context

from bot.store import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic upgrade head` from a shell: use the configured URL
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
