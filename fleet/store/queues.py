"""Queues and repositories: the things jobs refer to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, cast, func, null, select, union_all
from sqlalchemy.exc import IntegrityError

from fleet.db.dialect import aggregate_datetime
from fleet.db.models import finished_counts, jobs, queues, repositories
from fleet.states import SIZE_STATES, JobState
from fleet.store.database import Database
from fleet.store.errors import Conflict, UnknownQueue


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    max_retries: int
    retry_delay_seconds: float


@dataclass(frozen=True)
class QueueStats:
    name: str
    queued: int
    processing: int
    errored: int
    completed: int
    failed: int
    canceled: int
    oldest_queued_at: datetime | None

    @property
    def size(self) -> int:
        return self.queued + self.errored + self.processing


class QueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: set[str] = set()

    def ensure(self, names: list[str]) -> None:
        """Create the queues that do not exist yet with the default policy (used at server start)."""
        with self.db.write() as conn:
            existing = set(conn.execute(select(queues.c.name)).scalars())
            for name in names:
                if name not in existing:
                    conn.execute(queues.insert().values(**self._defaults(name)))
        self._known.update(names)  # they exist now, so a first submission to them is one statement too

    def add(self, name: str, max_retries: int | None = None, retry_delay_seconds: float | None = None) -> QueuePolicy:
        values = self._defaults(name)
        if max_retries is not None:
            values["max_retries"] = max_retries
        if retry_delay_seconds is not None:
            values["retry_delay_seconds"] = retry_delay_seconds
        try:
            with self.db.write() as conn:
                conn.execute(queues.insert().values(**values))
        except IntegrityError as exc:
            raise Conflict(f"queue {name!r} already exists") from exc
        return QueuePolicy(name, values["max_retries"], values["retry_delay_seconds"])

    def _defaults(self, name: str) -> dict[str, Any]:
        cfg = self.db.config
        return {
            "name": name,
            "max_retries": cfg.max_retries,
            "retry_delay_seconds": cfg.retry_delay_seconds,
            "created_at": self.db.clock(),
        }

    def names(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(select(queues.c.name).order_by(queues.c.name)).scalars())

    def policy(self, conn: Connection, name: str) -> QueuePolicy:
        row = conn.execute(select(queues).where(queues.c.name == name)).first()
        if row is None:
            raise UnknownQueue(self.unknown_message(conn, name))
        return QueuePolicy(row.name, row.max_retries, row.retry_delay_seconds)

    def known(self, names: list[str]) -> bool:
        """Whether all these queues were seen to exist (by require_cached): queues are never deleted."""
        return self._known.issuperset(names)

    def require_cached(self, conn: Connection, names: list[str]) -> None:
        """Like require(), but remembers queues seen to exist: queues are never deleted, so a hit stays true."""
        if self.known(names):
            return
        self.require(conn, names)
        self._known.update(names)

    def require(self, conn: Connection, names: list[str]) -> None:
        known = set(conn.execute(select(queues.c.name).where(queues.c.name.in_(names))).scalars())
        for name in names:
            if name not in known:
                raise UnknownQueue(self.unknown_message(conn, name))

    @staticmethod
    def unknown_message(conn: Connection, name: str) -> str:
        known = ", ".join(conn.execute(select(queues.c.name).order_by(queues.c.name)).scalars()) or "none"
        return f"unknown queue {name!r} (known: {known}); create it with `fleet queues add {name}`"

    def stats(self) -> list[QueueStats]:
        """Per queue, the jobs in each state: O(queues + active jobs), whatever the number of finished jobs.

        Active states are counted from ranges of ix_jobs_claim, one per (queue, active state): the queue and
        state lists make each a prefix of that index, where a bare `state IN (...)` scanned all of it. Finished
        ones are summed from finished_counts, which triggers keep exact in every transition (migration 0003).
        """
        # Two single-statement reads (no transaction, and on PostgreSQL no ping and no BEGIN/ROLLBACK: two round
        # trips in all). The counts come from one statement, so active and finished ones share one snapshot; a
        # queue created between the two reads shows zeros until the next call.
        with self.db.read_one() as conn:
            names = list(conn.execute(select(queues.c.name).order_by(queues.c.name)).scalars())
        active = (
            select(jobs.c.queue, jobs.c.state, func.count().label("n"), func.min(jobs.c.queued_at).label("oldest"))
            .where(jobs.c.queue.in_(names), jobs.c.state.in_([s.value for s in SIZE_STATES]))
            .group_by(jobs.c.queue, jobs.c.state)
        )
        finished = select(
            finished_counts.c.queue,
            finished_counts.c.state,
            func.sum(finished_counts.c.n),
            cast(null(), jobs.c.queued_at.type),
        ).group_by(finished_counts.c.queue, finished_counts.c.state)
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, Any] = {}
        with self.db.read_one() as conn:
            for q, state, n, first_queued in conn.execute(union_all(active, finished)):
                counts[(q, state)] = int(n)
                if state == JobState.QUEUED:
                    oldest[q] = first_queued
        out = []
        for name in names:
            n = {state: counts.get((name, state), 0) for state in JobState}
            out.append(
                QueueStats(
                    name=name,
                    queued=n[JobState.QUEUED],
                    processing=n[JobState.PROCESSING],
                    errored=n[JobState.ERRORED],
                    completed=n[JobState.COMPLETED],
                    failed=n[JobState.FAILED],
                    canceled=n[JobState.CANCELED],
                    oldest_queued_at=aggregate_datetime(oldest.get(name)),
                )
            )
        return out


class RepositoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, url: str) -> Row[Any]:
        """Register a repository, or point an existing name at a new location."""
        now = self.db.clock()
        with self.db.write() as conn:
            if conn.execute(select(repositories.c.name).where(repositories.c.name == name)).first():
                conn.execute(repositories.update().where(repositories.c.name == name).values(url=url))
            else:
                conn.execute(repositories.insert().values(name=name, url=url, created_at=now))
            return conn.execute(select(repositories).where(repositories.c.name == name)).one()

    def get(self, name: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(repositories.c.url).where(repositories.c.name == name)).scalar()

    def list(self) -> list[Row[Any]]:
        with self.db.read() as conn:
            return list(conn.execute(select(repositories).order_by(repositories.c.name)))
