"""The store's handle on the database: an engine, a clock, and read/write transactions."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement

from fleet.db import migrate, on_loop
from fleet.db.dialect import (
    READY_KEY,
    WRITE_OPTION,
    ReadyAnnouncement,
    direct_engine,
    is_sqlite,
    loop_engine_factory,
    make_engine,
    notify_statement,
    ready_announcements,
    single_statement_engines,
)
from fleet.db.direct import DirectStatements

Clock = Callable[[], datetime]
# Worker threads for store calls from async code on PostgreSQL (fleet.store.Store.call). Long polls park on the
# event loop, not in a thread, so these only run statements: 16 keep 2 cores busy with round trips to spare.
STORE_THREADS = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class StoreConfig:
    """The store's part of fleet.settings.ServerSettings, under the same names (fleet.app.store_config copies it);
    a dataclass so that tests and benchmarks make a store without the server's required tokens."""

    max_retries: int = 3  # of a queue created without its own
    retry_delay_seconds: float = 10.0  # likewise
    stalled_job_seconds: float = 25.0
    max_resets: int = 3
    max_log_entry_bytes: int = 1024 * 1024
    job_retention_days: float = 0.0  # 0 keeps finished jobs forever


class Database:
    def __init__(self, engine: Engine, clock: Clock = utcnow, config: StoreConfig | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config or StoreConfig()
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._read_one_engine, self._write_one_engine = single_statement_engines(engine, STORE_THREADS)
        self._direct = DirectStatements(
            *direct_engine(engine, self._write_one_engine),
            on_lost=self._read_one_engine.dispose,
            loop_engine=loop_engine_factory(self._write_one_engine),
        )
        # Whether store calls try the event loop first (fleet/db/on_loop.py); SQLite's run inline anyway.
        self.runs_on_loop = not is_sqlite(engine)
        # Called after a commit for each announce_ready() made in it: the server's notifier wakes waiters.
        self.ready_listeners: list[Callable[[ReadyAnnouncement], None]] = []
        # SQLite allows one writer at a time and makes the others sleep-and-retry in its busy handler (sleeps of
        # up to 100 ms). Queuing this process's writers on a lock instead hands the database over at once.
        self._write_lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if is_sqlite(engine) else contextlib.nullcontext()
        )

    @classmethod
    def from_url(cls, url: str, clock: Clock = utcnow, config: StoreConfig | None = None) -> Database:
        return cls(make_engine(url), clock, config)

    def migrate(self) -> None:
        migrate.upgrade(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        on_loop.blocking_connection()
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that commits on success; every state change happens inside exactly one of these."""
        on_loop.blocking_connection()
        with self._write_lock, self._write_engine.begin() as conn, self._announcements(conn) as pending:
            yield conn
        self._announce(pending)

    @contextmanager
    def read_one(self) -> Iterator[Connection]:
        """A read that is exactly one statement, and so consistent without a transaction."""
        on_loop.blocking_connection()
        with self._read_one_engine.connect() as conn:
            yield conn

    @contextmanager
    def write_one(self) -> Iterator[Connection]:
        """A write that is exactly one statement (reads of cached data aside): atomic without a transaction."""
        on_loop.blocking_connection()
        with self._write_lock, self._write_one_engine.begin() as conn, self._announcements(conn) as pending:
            yield conn
        self._announce(pending)

    def run_one(self, stmt: ClauseElement, params: dict[str, Any], ready: list[str] | None = None) -> list[Any]:
        """A write that is exactly one statement, run on a DBAPI connection directly (fleet.db.direct): the
        hot statements of the protocol and of submissions. Its rows (RETURNING) as named tuples.

        ready: queues in which the statement made a job ready, announced once it committed: first to this
        process's waiters, then (PostgreSQL) to the other processes with a NOTIFY, a statement of its own, so a
        local waiter does not wait for that round trip. On the event loop the NOTIFY runs after this call, and
        one that fails is only logged: the job is queued either way. A process that dies in between, or a lost
        NOTIFY, leaves the job to the other processes' shared re-check. Every such statement has RETURNING: no
        rows, nothing changed (and nothing announced), which fleet/db/on_loop.py relies on to move a call to a
        thread."""
        with self._write_lock:
            rows = self._direct.execute(stmt, params)
        if not rows:
            return rows
        on_loop.wrote()
        notes = ready_announcements(ready) if ready else []
        self._announce(notes)
        for note in notes:
            notify = notify_statement(self.engine.dialect, note)
            if notify is not None and not on_loop.later(self._direct.execute, *notify):
                self._direct.execute(*notify)
        return rows

    @staticmethod
    @contextmanager
    def _announcements(conn: Connection) -> Iterator[list[ReadyAnnouncement]]:
        """Collects the transaction's announce_ready() calls; none stay on the pooled connection."""
        pending: list[ReadyAnnouncement] = []
        try:
            yield pending
        except BaseException:
            # Nothing is announced for a transaction that fails; an invalidated connection refuses even .info.
            with contextlib.suppress(SQLAlchemyError):
                conn.info.pop(READY_KEY, None)
            raise
        pending.extend(conn.info.pop(READY_KEY, ()))

    def _announce(self, pending: list[ReadyAnnouncement]) -> None:
        # Only after the commit: a waiter woken earlier would claim before the job is visible.
        for note in pending:
            for listener in self.ready_listeners:
                listener(note)

    def engines(self) -> list[Engine]:
        """Every engine the store runs statements on (for statement counters in tests and benchmarks)."""
        return list({id(e): e for e in (self.engine, self._read_one_engine)}.values())

    def dispose_on_loop(self) -> None:
        """Close the event loop's connections (inside a store call on the loop, at the server's shutdown)."""
        self._direct.dispose_on_loop()

    def dispose(self) -> None:
        self._direct.dispose()
        self.engine.dispose()
        self._read_one_engine.dispose()
