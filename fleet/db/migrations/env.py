"""Alembic environment: migrations run on a connection handed over by fleet.db.migrate."""

from __future__ import annotations

from alembic import context

from fleet.db.models import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
