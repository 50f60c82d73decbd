"""What executors report about the jobs they hold: completion, errors, failures and heartbeats.

Every write is accepted only from the executor that dequeued the job, for the job's queue, while the job is
processing, and (when a job token is used) only for the attempt the token was issued for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from fleet.db.dialect import upsert
from fleet.db.models import executors, jobs
from fleet.states import JobState
from fleet.store.database import Database
from fleet.store.errors import NotFound
from fleet.store.queues import QueueStore


@dataclass(frozen=True)
class Outcome:
    job_id: int
    queue: str
    state: JobState


def owned_job(
    conn: Connection, queue: str, job_id: int, executor_name: str, attempt: int | None, lock: bool = True
) -> Row[Any]:
    stmt = select(jobs).where(
        jobs.c.id == job_id,
        jobs.c.queue == queue,
        jobs.c.state == JobState.PROCESSING,
        jobs.c.executor_name == executor_name,
    )
    if attempt is not None:
        stmt = stmt.where(jobs.c.attempt == attempt)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"job {job_id} is not being processed by executor {executor_name!r} in queue {queue!r}")
    return row


class TransitionStore:
    def __init__(self, db: Database, queues: QueueStore) -> None:
        self.db = db
        self.queues = queues

    def _finish(self, conn: Connection, row: Row[Any], state: JobState, message: str | None) -> Outcome:
        if row.cancel_requested:
            state, message = JobState.CANCELED, message or "job was canceled"
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(state=state, finished_at=self.db.clock(), token_hash=None, failure_message=message)
        )
        return Outcome(row.id, row.queue, state)

    def mark_complete(self, queue: str, job_id: int, executor_name: str, attempt: int | None = None) -> Outcome:
        with self.db.write() as conn:
            row = owned_job(conn, queue, job_id, executor_name, attempt)
            return self._finish(conn, row, JobState.COMPLETED, None)

    def mark_failed(
        self, queue: str, job_id: int, executor_name: str, message: str, attempt: int | None = None
    ) -> Outcome:
        with self.db.write() as conn:
            row = owned_job(conn, queue, job_id, executor_name, attempt)
            return self._finish(conn, row, JobState.FAILED, message)

    def mark_errored(
        self, queue: str, job_id: int, executor_name: str, message: str, attempt: int | None = None
    ) -> Outcome:
        """Errored jobs are retried after the queue's delay until its max retries are used up, then fail."""
        with self.db.write() as conn:
            row = owned_job(conn, queue, job_id, executor_name, attempt)
            if row.cancel_requested:
                return self._finish(conn, row, JobState.CANCELED, message)
            policy = self.queues.policy(conn, queue)
            failures = row.num_failures + 1
            if failures > policy.max_retries:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(num_failures=failures))
                return self._finish(conn, row, JobState.FAILED, message)
            now = self.db.clock()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.ERRORED,
                    num_failures=failures,
                    failure_message=message,
                    finished_at=now,
                    token_hash=None,
                    process_after=now + timedelta(seconds=policy.retry_delay_seconds),
                )
            )
            return Outcome(job_id, queue, JobState.ERRORED)

    def heartbeat(
        self, queue_names: list[str], executor: dict[str, Any], job_ids: list[int]
    ) -> tuple[list[int], list[int]]:
        """Record the executor and refresh its jobs' heartbeats.

        Returns (known, cancel): the ids of those jobs the server still assigns to this executor, and the ids of
        those the executor should stop because someone canceled them.
        """
        now = self.db.clock()
        name = executor["name"]
        with self.db.write() as conn:
            self.queues.require_cached(conn, queue_names)
            values = {**executor, "queue_names": sorted(queue_names), "last_seen_at": now}
            upsert(conn, executors, {**values, "first_seen_at": now}, key="name", update=values)
            if not job_ids:
                return [], []
            rows = conn.execute(
                select(jobs.c.id, jobs.c.cancel_requested).where(
                    jobs.c.id.in_(job_ids),
                    jobs.c.queue.in_(queue_names),
                    jobs.c.state == JobState.PROCESSING,
                    jobs.c.executor_name == name,
                )
            ).all()
            known = [r.id for r in rows]
            if known:
                conn.execute(update(jobs).where(jobs.c.id.in_(known)).values(last_heartbeat_at=now))
        return sorted(known), sorted(r.id for r in rows if r.cancel_requested)

    def list_executors(self) -> list[Row[Any]]:
        with self.db.read() as conn:
            return list(conn.execute(select(executors).order_by(executors.c.last_seen_at.desc())))
