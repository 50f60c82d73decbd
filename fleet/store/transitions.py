"""What executors report about the jobs they hold: completion, errors, failures and heartbeats.

Every write is accepted only from the executor that dequeued the job, for the job's queue, while the job is
processing, and (when a job token is used) only with the token of the current attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    String,
    Text,
    Update,
    bindparam,
    select,
    update,
)

from fleet.db.dialect import UTCDateTime, announce_ready
from fleet.db.models import jobs
from fleet.states import JobState
from fleet.store.database import Database
from fleet.store.errors import Conflict, NotFound
from fleet.store.lifecycle import Event, after_error, reported, reported_sql, state_is
from fleet.store.queues import QueueStore
from fleet.store.tokens import Writer, owned_job, owned_where, refusal


@dataclass(frozen=True)
class Outcome:
    job_id: int
    queue: str
    state: JobState


def _finish_statement(by_token: bool) -> Update:
    # A cancel requested while the job ran wins over the outcome the executor reports.
    state, message = reported_sql(
        jobs.c.cancel_requested.is_(True), bindparam("f_state", type_=String), bindparam("f_message", type_=Text)
    )
    return (
        update(jobs)
        .where(*owned_where(by_token))
        .values(
            state=state,
            failure_message=message,
            finished_at=bindparam("f_now", type_=UTCDateTime),
            token_hash=None,
        )
        .returning(jobs.c.state)
    )


_FINISH = {t: _finish_statement(t) for t in (False, True)}


class TransitionStore:
    def __init__(self, db: Database, queues: QueueStore) -> None:
        self.db = db
        self.queues = queues

    def finish(self, writer: Writer, state: JobState, message: str | None) -> Outcome:
        """Complete or fail a job in one statement."""
        params = {**writer.params(), "f_state": state.value, "f_message": message, "f_now": self.db.clock()}
        rows = self.db.run_one(_FINISH[writer.token is not None], params)
        final = rows[0][0] if rows else None
        if final is None:
            with self.db.read_one() as conn:
                raise refusal(conn, writer)
        return Outcome(writer.job_id, writer.queue, JobState(final))

    def _finish(self, conn: Connection, row: Row[Any], state: JobState, message: str | None) -> Outcome:
        state, message = reported(row.cancel_requested, state, message)
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(state=state, finished_at=self.db.clock(), token_hash=None, failure_message=message)
        )
        return Outcome(row.id, row.queue, state)

    def mark_complete(self, queue: str, job_id: int, executor_name: str, token: str | None = None) -> Outcome:
        return self.finish(Writer(queue, job_id, executor_name, token), JobState.COMPLETED, None)

    def mark_failed(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        message: str,
        token: str | None = None,
    ) -> Outcome:
        return self.finish(Writer(queue, job_id, executor_name, token), JobState.FAILED, message)

    def mark_errored(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        message: str,
        token: str | None = None,
    ) -> Outcome:
        """Errored jobs are retried after the queue's delay until its max retries are used up, then fail."""
        with self.db.write() as conn:
            row = owned_job(conn, Writer(queue, job_id, executor_name, token))
            if row.cancel_requested:
                return self._finish(conn, row, JobState.CANCELED, message)
            policy = self.queues.policy(conn, queue)
            failures = row.num_failures + 1
            if after_error(failures, policy.max_retries) == JobState.FAILED:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(num_failures=failures))
                return self._finish(conn, row, JobState.FAILED, message)
            now = self.db.clock()
            retry_at = now + timedelta(seconds=policy.retry_delay_seconds)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.ERRORED,
                    num_failures=failures,
                    failure_message=message,
                    finished_at=now,
                    token_hash=None,
                    process_after=retry_at,
                )
            )
            # Waiters are woken when the delay runs out (a timer per queue in the server), not by polling.
            announce_ready(conn, [queue], at=retry_at)
            return Outcome(job_id, queue, JobState.ERRORED)

    def retry(self, job_id: int) -> Row[Any]:
        """Queue a finished job again. Its next dequeue is a new attempt; earlier attempts' log entries stay.

        The retry and reset budgets start afresh: this is a person's decision, not the queue's retry policy.
        """
        now = self.db.clock()
        with self.db.write() as conn:
            # The state check is in the UPDATE's WHERE, so two retries of one job cannot both queue it.
            queue = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, state_is(jobs.c.state, Event.RETRY))
                .values(
                    state=JobState.QUEUED,
                    queued_at=now,
                    process_after=None,
                    started_at=None,
                    finished_at=None,
                    last_heartbeat_at=None,
                    executor_name=None,
                    num_resets=0,
                    num_failures=0,
                    failure_message=None,
                    cancel_requested=False,
                    token_hash=None,
                )
                .returning(jobs.c.queue)
            ).scalar()
            if queue is None:
                state = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).scalar()
                if state is None:
                    raise NotFound(f"job {job_id} does not exist")
                raise Conflict(f"job {job_id} is {state}: only completed, failed or canceled jobs can be retried")
            announce_ready(conn, [queue])
            return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
