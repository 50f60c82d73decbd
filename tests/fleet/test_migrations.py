"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fleet.db.models import metadata
from fleet.store import Store


def test_migrations_match_models(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        with store.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
        # Unique constraints are reflected differently per dialect; compare tables, columns and indexes.
        relevant = [d for d in diff if not (isinstance(d, tuple) and d[0] in ("add_constraint", "remove_constraint"))]
        assert relevant == []
        assert {"jobs", "queues", "repositories", "execution_log_entries", "executors", "alembic_version"} <= tables
    finally:
        store.close()


def test_migrations_are_idempotent(database_url: str) -> None:
    Store.open(database_url).close()
    store = Store.open(database_url)  # a second start finds the schema current and changes nothing
    store.queues.ensure(["batches"])
    assert store.queues.names() == ["batches"]
    store.close()
