"""The job lifecycle, declared once: which event moves a job from which states to which, who wins a race, and the
two retry budgets. The store's SQL (jobs.py, transitions.py, resetter.py, retention.py) is built from these rules;
no other code changes a job's state (docs/design.md, "Where each concept lives").

    event      from                        to
    submit     (new)                       queued
    claim      queued, errored (due)       processing            a new attempt, a new job token
    complete   processing                  completed             canceled if a cancel was requested
    fail       processing                  failed                canceled if a cancel was requested
    error      processing                  errored, or failed    failed once num_failures > the queue's max_retries
    stall      processing                  queued, or failed     failed once num_resets >= max_resets
    cancel     queued, errored             canceled              at once
    cancel     processing                  (unchanged)           cancel_requested: the executor stops it, then
                                                                 its report (or the resetter) makes it canceled
    retry      completed, failed, canceled queued                both budgets start afresh
    expire     completed, failed, canceled (deleted)             retention, after FLEET_JOB_RETENTION

Cancel wins: once a cancel is requested, whatever a running job's executor reports, or the resetter finds, the job
ends canceled. The two budgets are separate on purpose: an errored job spent one of its queue's retries (the step
failed in a retryable way); a stalled job spent one of the server's resets (its executor vanished).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, case, func

from fleet.states import DEQUEUEABLE, TERMINAL, JobState

CANCELED_MESSAGE = "job was canceled"
RESET_FAILURE_MESSAGE = "job processor died while handling this message too many times"


class Event(StrEnum):
    SUBMIT = "submit"
    CLAIM = "claim"
    COMPLETE = "complete"
    FAIL = "fail"
    ERROR = "error"
    STALL = "stall"
    CANCEL = "cancel"
    RETRY = "retry"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Rule:
    from_states: tuple[JobState, ...]
    to_states: tuple[JobState, ...]  # the first is the usual outcome; () for expire (the row is deleted)


RULES: dict[Event, Rule] = {
    Event.SUBMIT: Rule((), (JobState.QUEUED,)),
    Event.CLAIM: Rule(DEQUEUEABLE, (JobState.PROCESSING,)),
    Event.COMPLETE: Rule((JobState.PROCESSING,), (JobState.COMPLETED, JobState.CANCELED)),
    Event.FAIL: Rule((JobState.PROCESSING,), (JobState.FAILED, JobState.CANCELED)),
    Event.ERROR: Rule((JobState.PROCESSING,), (JobState.ERRORED, JobState.FAILED, JobState.CANCELED)),
    Event.STALL: Rule((JobState.PROCESSING,), (JobState.QUEUED, JobState.FAILED, JobState.CANCELED)),
    Event.CANCEL: Rule((*DEQUEUEABLE, JobState.PROCESSING), (JobState.CANCELED,)),
    Event.RETRY: Rule(TERMINAL, (JobState.QUEUED,)),
    Event.EXPIRE: Rule(TERMINAL, ()),
}


def from_states(event: Event) -> list[str]:
    """The states an event applies to, as the values a SQL `IN` / `=` compares with."""
    return [s.value for s in RULES[event].from_states]


def state_is(column: ColumnElement[str], event: Event) -> ColumnElement[bool]:
    """WHERE the job is in a state the event applies to (`=` for one state: the hot path's statements stay plain)."""
    states = from_states(event)
    return column == states[0] if len(states) == 1 else column.in_(states)


def reported(cancel_requested: bool, state: JobState, message: str | None) -> tuple[JobState, str | None]:
    """An executor's report (complete, fail, error), with cancel winning."""
    if cancel_requested:
        return JobState.CANCELED, message or CANCELED_MESSAGE
    return state, message


def reported_sql(
    cancel_requested: ColumnElement[bool], state: ColumnElement[str], message: ColumnElement[str]
) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """reported() as SQL, for the one-statement finish of the hot path: (state, failure_message) expressions."""
    return (
        case((cancel_requested, JobState.CANCELED.value), else_=state),
        case((cancel_requested, func.coalesce(func.nullif(message, ""), CANCELED_MESSAGE)), else_=message),
    )


def after_error(num_failures: int, max_retries: int) -> JobState:
    """num_failures counts this error too: a queue with max_retries N runs a job at most N + 1 times."""
    return JobState.FAILED if num_failures > max_retries else JobState.ERRORED


def after_stall(cancel_requested: bool, num_resets: int, max_resets: int) -> tuple[JobState, str | None]:
    """num_resets counts earlier resets only: the job is requeued max_resets times, then fails."""
    if cancel_requested:
        return JobState.CANCELED, CANCELED_MESSAGE
    if num_resets >= max_resets:
        return JobState.FAILED, RESET_FAILURE_MESSAGE
    return JobState.QUEUED, None


def after_cancel(state: JobState) -> JobState | None:
    """The state a cancel request moves a job to at once; None when its executor must stop it first."""
    return JobState.CANCELED if state in DEQUEUEABLE else None
