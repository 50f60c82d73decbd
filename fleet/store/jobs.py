"""Jobs: submission, the claim (dequeue), reads, and cancellation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Insert,
    Row,
    String,
    Text,
    Update,
    bindparam,
    false,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast

from fleet.db.dialect import UTCDateTime, announce_ready, lock_for_claim
from fleet.db.models import jobs, repositories
from fleet.schemas import QUEUE_NAME_RE, JobSubmission
from fleet.states import JobState
from fleet.store.database import Database, hash_token
from fleet.store.errors import Conflict, InvalidInput, NotFound
from fleet.store.lifecycle import RULES, Event, after_cancel
from fleet.store.queues import QueueStore
from fleet.store.tokens import TokenScope, read_scope


@dataclass(frozen=True)
class Claim:
    """A job handed to an executor: the plain token exists here only (the store keeps its hash)."""

    id: int
    queue: str
    token: str
    spec: str  # the job's spec as stored: a JSON object's text


def _submit_statement() -> Insert:
    """INSERT ... SELECT of one queued job, only if its repository (when it names one) is registered."""
    repo = bindparam("s_repo", type_=String)
    now = bindparam("s_now", type_=UTCDateTime)
    registered = select(repositories.c.name).where(repositories.c.name == repo).exists()
    values = select(
        bindparam("s_queue", type_=String),
        literal_column(f"'{JobState.QUEUED.value}'"),
        bindparam("s_spec", type_=jobs.c.spec.type),
        repo,
        now,
        now,
        literal_column("0"),
        literal_column("0"),
        literal_column("0"),
        false(),
    ).where(or_(repo.is_(None), registered))
    columns = ["queue", "state", "spec", "repository_name", "created_at", "queued_at"]
    columns += ["attempt", "num_resets", "num_failures", "cancel_requested"]
    return jobs.insert().from_select(columns, values).returning(*jobs.c)


_SUBMIT = _submit_statement()

# Hot-path statements are built once: building and cache-keying a statement costs more than running it.
# Claim statements are cached per list of queues; executors use a handful of lists, so this bound is generous.
MAX_CACHED_CLAIMS = 256
MAX_SPARE_TOKENS = 64


class JobStore:
    def __init__(self, db: Database, queues: QueueStore) -> None:
        self.db = db
        self.queues = queues
        self._claims: dict[tuple[str, ...], Update] = {}
        # Tokens made for claims that found nothing, kept for the next claim: a token is made and hashed once
        # per claim that wins, not once per attempt. They never left the server. (list.pop/append are atomic.)
        self._spare_tokens: list[tuple[str, str]] = []

    def submit(self, submission: JobSubmission) -> Row[Any]:
        """Queue a job; its row (a Row, or the named tuple of fleet.db.direct: the same attributes)."""
        now = self.db.clock()
        repo = submission.repositoryName or None
        if self.queues.known([submission.queue]):
            # The queue is known to exist (queues are never deleted), so one statement does it, the repository
            # check included; a job for an unregistered repository inserts nothing and is refused below.
            params = {"s_queue": submission.queue, "s_spec": submission.spec(), "s_repo": repo, "s_now": now}
            rows = self.db.run_one(_SUBMIT, params, ready=[submission.queue])
            if rows:
                return cast(Row[Any], rows[0])
        with self.db.write() as conn:
            self.queues.require_cached(conn, [submission.queue])
            if repo and not conn.execute(select(repositories.c.name).where(repositories.c.name == repo)).first():
                raise InvalidInput(
                    f"repositoryName {repo!r} is not registered with the server; "
                    f"register it with `fleet repos add {repo} PATH_OR_URL`"
                )
            job_id = conn.execute(
                jobs.insert().values(
                    queue=submission.queue,
                    state=JobState.QUEUED,
                    spec=submission.spec(),
                    repository_name=repo,
                    created_at=now,
                    queued_at=now,
                    attempt=0,
                    num_resets=0,
                    num_failures=0,
                    cancel_requested=False,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
            announce_ready(conn, [submission.queue])
        return row

    def claim(self, queue_names: list[str], executor_name: str) -> Claim | None:
        """Hand the oldest ready job of these queues to one executor; None when there is none.

        The job token is generated here and only its hash is stored: the plain token exists in the Claim only.
        """
        try:
            token, token_hash = self._spare_tokens.pop()
        except IndexError:
            token = secrets.token_urlsafe(32)
            token_hash = hash_token(token)
        params: dict[str, Any] = {"c_now": self.db.clock(), "c_executor": executor_name, "c_token_hash": token_hash}
        if not self.queues.known(queue_names):
            with self.db.read_one() as conn:
                self.queues.require_cached(conn, queue_names)
        rows = self.db.run_one(self._claim_statement(tuple(queue_names)), params)
        if not rows:
            if len(self._spare_tokens) < MAX_SPARE_TOKENS:
                self._spare_tokens.append((token, token_hash))
            return None
        job_id, queue, spec = rows[0]
        return Claim(job_id, queue, token, spec)

    def _claim_statement(self, queue_names: tuple[str, ...]) -> Update:
        """One UPDATE ... RETURNING that picks and takes the job, so a claim is one round trip.

        One indexed probe per (queue, state) instead of one query sorting every ready job: each probe walks
        ix_jobs_claim in id order and stops at the first ready row; the oldest of the probes' rows is taken.
        """
        stmt = self._claims.get(queue_names)
        if stmt is not None:
            return stmt
        if len(self._claims) >= MAX_CACHED_CLAIMS:
            self._claims.clear()
        now = bindparam("c_now", type_=UTCDateTime)
        probes = []
        for queue in queue_names:
            if not QUEUE_NAME_RE.match(queue):  # it is written into the SQL below
                raise InvalidInput(f"queue name {queue!r} is not valid")
            for state in RULES[Event.CLAIM].from_states:
                probe = (
                    select(jobs.c.id)
                    .where(
                        # Queue, state and limit are written into the SQL: PostgreSQL caches a generic plan for
                        # prepared statements, and one built without knowing them walked the whole table for a
                        # queue with nothing ready.
                        jobs.c.queue == literal_column(f"'{queue}'"),
                        # The state as a range and the order by (state, id) leave ix_jobs_claim as the only index
                        # that yields the order. With `state = ...` and `ORDER BY id` the planner may walk the
                        # primary key instead, stepping over every job claimed since the last ANALYZE.
                        jobs.c.state >= literal_column(f"'{state.value}'"),
                        jobs.c.state <= literal_column(f"'{state.value}'"),
                        or_(jobs.c.process_after.is_(None), jobs.c.process_after <= now),
                    )
                    .order_by(jobs.c.state, jobs.c.id)
                    .limit(literal_column("1"))
                )
                probes.append(select(lock_for_claim(probe, self.db.engine).subquery().c.id))
        candidates = union_all(*probes).subquery()
        oldest = select(func.min(candidates.c.id)).scalar_subquery()
        stmt = (
            update(jobs)
            .where(jobs.c.id == oldest)
            .values(
                state=JobState.PROCESSING.value,
                started_at=now,
                last_heartbeat_at=now,
                process_after=None,
                executor_name=bindparam("c_executor", type_=String),
                attempt=jobs.c.attempt + 1,
                token_hash=bindparam("c_token_hash", type_=String),
            )
            # The spec as the text the store wrote: the dequeue reply takes it as it is (fleet/api/views.py).
            .returning(jobs.c.id, jobs.c.queue, sql_cast(jobs.c.spec, Text).label("spec"))
        )
        self._claims[queue_names] = stmt
        return stmt

    def scope_of_token(self, token: str) -> TokenScope | None:
        """The live attempt a job token belongs to; None for unknown or revoked tokens."""
        with self.db.read_one() as conn:
            return read_scope(conn, token)

    def get(self, job_id: int) -> Row[Any]:
        with self.db.read() as conn:
            return self._row(conn, job_id)

    def list(
        self, queue: str | None = None, state: str | None = None, limit: int = 100, before: int | None = None
    ) -> list[Row[Any]]:
        stmt = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if before:
            stmt = stmt.where(jobs.c.id < before)
        if queue:
            stmt = stmt.where(jobs.c.queue == queue)
        if state:
            stmt = stmt.where(jobs.c.state == state)
        with self.db.read() as conn:
            return list(conn.execute(stmt))

    def cancel(self, job_id: int) -> Row[Any]:
        """Queued or errored jobs are canceled at once; a processing job is canceled when its executor reports."""
        now = self.db.clock()
        with self.db.write() as conn:
            row = self._row(conn, job_id)
            if row.state not in RULES[Event.CANCEL].from_states:
                raise Conflict(f"job {job_id} is already {row.state}")
            now_state = after_cancel(JobState(row.state))
            if now_state is not None:
                values: dict[str, Any] = {
                    "state": now_state,
                    "finished_at": now,
                    "cancel_requested": True,
                    "process_after": None,
                }
            else:
                values = {"cancel_requested": True}
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
            return self._row(conn, job_id)

    @staticmethod
    def _row(conn: Connection, job_id: int) -> Row[Any]:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return row
