"""The job store: the only code that changes a job's state. Never raises HTTP errors (see fleet.store.errors)."""

from __future__ import annotations

from fleet.store.database import Clock, Database, StoreConfig, utcnow
from fleet.store.jobs import JobStore, TokenScope
from fleet.store.logs import LogStore
from fleet.store.queues import QueueStore, RepositoryStore
from fleet.store.resetter import Resetter
from fleet.store.transitions import TransitionStore


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.queues = QueueStore(db)
        self.repos = RepositoryStore(db)
        self.jobs = JobStore(db, self.queues)
        self.transitions = TransitionStore(db, self.queues)
        self.logs = LogStore(db)
        self.resetter = Resetter(db)

    @classmethod
    def open(cls, url: str, clock: Clock = utcnow, config: StoreConfig | None = None) -> Store:
        db = Database.from_url(url, clock, config)
        db.migrate()
        return cls(db)

    def close(self) -> None:
        self.db.dispose()


__all__ = ["Store", "StoreConfig", "Database", "TokenScope", "utcnow"]
