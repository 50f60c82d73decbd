"""The job store: the only code that changes a job's state. Never raises HTTP errors (see fleet.store.errors)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from fleet.db import on_loop
from fleet.db.dialect import runs_inline
from fleet.store.database import STORE_THREADS, Clock, Database, StoreConfig, utcnow
from fleet.store.executors import ExecutorStore
from fleet.store.jobs import JobStore
from fleet.store.logs import LogStore
from fleet.store.queues import QueueStore, RepositoryStore
from fleet.store.resetter import Resetter
from fleet.store.retention import Retention
from fleet.store.tokens import TokenScope
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
        self.executors = ExecutorStore(db, self.queues)
        self.logs = LogStore(db)
        self.resetter = Resetter(db)
        self.retention = Retention(db)
        self._inline = runs_inline(db.engine)
        # A plain executor: anyio's worker threads (run_in_threadpool) cost about twice as much per hop.
        self._threads = ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="store")

    @classmethod
    def open(cls, url: str, clock: Clock = utcnow, config: StoreConfig | None = None) -> Store:
        db = Database.from_url(url, clock, config)
        db.migrate()
        return cls(db)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store function from async code: inline on SQLite. On PostgreSQL on the event loop while it runs
        only direct statements (the protocol's hot path), else in a worker thread (fleet/db/on_loop.py)."""
        if self._inline:
            return fn(*args, **kwargs)
        if self.db.runs_on_loop:
            try:
                return await on_loop.run(fn, *args, **kwargs)
            except on_loop.NeedsThread:
                pass  # it changed nothing: run it again where it may block
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        """close(), from the event loop the store served: its loop connections are closed, not dropped."""
        if self.db.runs_on_loop:
            await on_loop.drain()
            await on_loop.run(self.db.dispose_on_loop)
        self.close()

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self.db.dispose()


__all__ = ["Store", "StoreConfig", "Database", "TokenScope", "utcnow"]
