"""Who writes about a job (`Writer`), what a job token grants (`TokenScope`), and why a write was refused.

Two types, not one: a `Writer` is what a request claims (queue, job, executor, maybe a token), a `TokenScope` is
what the server recorded when it handed the token out. A write matches the first against the job row in its own
WHERE clause; only a refused write reads the second, once, to say why (`refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, Row, String, bindparam, select

from fleet.db.models import jobs
from fleet.states import JobState
from fleet.store.database import hash_token
from fleet.store.errors import NotOwned, StoreError, TokenOutOfScope, TokenUnknown
from fleet.store.lifecycle import Event, state_is

TOKEN_UNKNOWN = "job token unknown or revoked (the job finished or was requeued)"
ANOTHER_EXECUTOR = "job token was issued to another executor"


@dataclass(frozen=True)
class TokenScope:
    """What a job token allows: writes about one attempt of one job in one queue, and reads of one repository."""

    job_id: int
    attempt: int
    queue: str
    repository_name: str | None
    executor_name: str | None

    def refusal(
        self,
        *,
        job_id: int | str | None = None,
        queue: str | None = None,
        repository: str | None = None,
        executor_name: str | None = None,
    ) -> TokenOutOfScope | None:
        """The first thing asked for that this token does not grant (None: all of it is granted).

        job_id may be a header's text: it is compared as written, so `007` is not job 7."""
        if job_id is not None and str(job_id) != str(self.job_id):
            return TokenOutOfScope(f"job token is for job {self.job_id}, not {job_id}")
        if queue is not None and queue != self.queue:
            return TokenOutOfScope(f"job token is for queue {self.queue!r}, not {queue!r}")
        if repository is not None and repository != self.repository_name:
            return TokenOutOfScope(f"job token does not grant access to repository {repository!r}")
        if executor_name is not None and self.executor_name is not None and executor_name != self.executor_name:
            return TokenOutOfScope(ANOTHER_EXECUTOR)
        return None


_SCOPE_OF_TOKEN = select(jobs.c.id, jobs.c.attempt, jobs.c.queue, jobs.c.repository_name, jobs.c.executor_name).where(
    jobs.c.token_hash == bindparam("token_hash", type_=String), jobs.c.state == JobState.PROCESSING.value
)


def read_scope(conn: Connection, token: str) -> TokenScope | None:
    """The live attempt a job token belongs to; None for unknown or revoked tokens."""
    row = conn.execute(_SCOPE_OF_TOKEN, {"token_hash": hash_token(token)}).first()
    if row is None:
        return None
    return TokenScope(row.id, row.attempt, row.queue, row.repository_name, row.executor_name)


@dataclass(frozen=True)
class Writer:
    """Who writes about a job: an executor, for one queue, optionally with the job token of one attempt."""

    queue: str
    job_id: int
    executor_name: str
    token: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "w_job_id": self.job_id,
            "w_queue": self.queue,
            "w_executor": self.executor_name,
            "w_token_hash": hash_token(self.token) if self.token is not None else None,
        }

    def not_owned_message(self) -> str:
        return f"job {self.job_id} is not being processed by executor {self.executor_name!r} in queue {self.queue!r}"


def owned_where(by_token: bool) -> list[ColumnElement[bool]]:
    """The WHERE clause of every write about a job: the writer must hold the job's current attempt (its token
    is revoked when the attempt ends, so a token names one attempt)."""
    where = [
        jobs.c.id == bindparam("w_job_id", type_=Integer),
        jobs.c.queue == bindparam("w_queue", type_=String),
        # complete, fail and error all apply to processing jobs only (lifecycle.RULES).
        state_is(jobs.c.state, Event.COMPLETE),
        jobs.c.executor_name == bindparam("w_executor", type_=String),
    ]
    if by_token:
        where.append(jobs.c.token_hash == bindparam("w_token_hash", type_=String))
    return where


def refusal(conn: Connection, writer: Writer, owned_message: str | None = None) -> StoreError:
    """Why a write the store refused was refused, from at most one read.

    With a token, the read is the token's scope: unknown or revoked (TokenUnknown), for another job or queue
    (TokenOutOfScope), or granting this job but not owned by the named executor (NotOwned, which carries the scope
    so a route can tell a token issued to another executor). owned_message: what to say when the writer does hold
    the job (a log entry outside the attempt); without it, the write's own refusal already said it is not owned,
    and no read is made for a write without a token.
    """
    if writer.token is None:
        if owned_message is None:
            return NotOwned(writer.not_owned_message())
        owned = conn.execute(select(jobs.c.id).where(*owned_where(False)), writer.params()).first()
        return NotOwned(owned_message if owned else writer.not_owned_message())
    scope = read_scope(conn, writer.token)
    if scope is None:
        return TokenUnknown(TOKEN_UNKNOWN)
    out_of_scope = scope.refusal(job_id=writer.job_id, queue=writer.queue)
    if out_of_scope is not None:
        return out_of_scope
    holds = scope.executor_name == writer.executor_name
    message = owned_message if holds and owned_message is not None else writer.not_owned_message()
    return NotOwned(message, scope)


def owned_job(conn: Connection, writer: Writer, lock: bool = True) -> Row[Any]:
    stmt = select(jobs).where(*owned_where(writer.token is not None))
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt, writer.params()).first()
    if row is None:
        raise refusal(conn, writer)
    return row
