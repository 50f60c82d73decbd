"""The job store: the only code that changes a job's state. Never raises HTTP errors (see fleet.store.errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from fleet.db.dialect import runs_inline
from fleet.store.database import Clock, Database, StoreConfig, utcnow
from fleet.store.jobs import JobStore, TokenScope
from fleet.store.logs import LogStore
from fleet.store.queues import QueueStore, RepositoryStore
from fleet.store.resetter import Resetter
from fleet.store.transitions import TransitionStore

P = ParamSpec("P")
T = TypeVar("T")


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.queues = QueueStore(db)
        self.repos = RepositoryStore(db)
        self.jobs = JobStore(db, self.queues)
        self.transitions = TransitionStore(db, self.queues)
        self.logs = LogStore(db)
        self.resetter = Resetter(db)
        self._inline = runs_inline(db.engine)

    @classmethod
    def open(cls, url: str, clock: Clock = utcnow, config: StoreConfig | None = None) -> Store:
        db = Database.from_url(url, clock, config)
        db.migrate()
        return cls(db)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store function from async code: inline on SQLite, in a worker thread on PostgreSQL."""
        if self._inline:
            return fn(*args, **kwargs)
        return await run_in_threadpool(fn, *args, **kwargs)

    def close(self) -> None:
        self.db.dispose()


__all__ = ["Store", "StoreConfig", "Database", "TokenScope", "utcnow"]
