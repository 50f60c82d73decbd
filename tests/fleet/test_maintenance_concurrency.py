"""The maintenance services' multi-row transactions beside each other and beside the protocol, on both backends.

The finished-count triggers (migration 0003) make every statement that moves a job into or out of a final state
lock a counter row. The resetter (stalled jobs to failed) and retention (expired jobs deleted) each lock several of
them in one transaction, in the order they meet the jobs; run side by side, from two server processes or
threads, they could lock the same counter rows in opposite orders and deadlock on PostgreSQL. Here both run
round after round in threads, with completions going on beside them: no store call may fail, and the counts must
stay exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fleet.store import Store, StoreConfig
from fleet.store.jobs import Claim
from fleet.store.resetter import ResetResult
from tests.fleet.test_queue_stats import check
from tests.fleet.test_store import submit

JOBS_PER_ROUND = 48  # six of each of the eight counter shards, for each service
ROUNDS = 12  # without the fix, PostgreSQL deadlocked within 6 rounds in 2 of 3 runs


class SteppedClock:
    """The store's clock, shared by the threads: each round moves it two days, so earlier rounds' jobs expire."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, days: float) -> None:
        with self._lock:
            self.now += timedelta(days=days)


def claim(store: Store) -> Claim:
    submit(store)
    job = store.jobs.claim(["batches"], "ex")
    assert job is not None
    return job


def side_by_side(*fns: Callable[[], object]) -> dict[str, object]:
    """Run the calls in threads at once; their results by function name, or the first error raised."""
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def run(fn: Callable[[], object]) -> None:
        try:
            results[fn.__name__] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_resetter_retention_and_completions_run_together(database_url: str) -> None:
    clock = SteppedClock()
    config = StoreConfig(stalled_job_seconds=25, max_resets=0, job_retention_days=1)
    store = Store.open(database_url, clock, config)
    try:
        store.queues.ensure(["batches"])
        for _ in range(ROUNDS):
            # Half the jobs finish as failed now (retention deletes them once the clock has moved), half stay
            # processing without a heartbeat (the resetter fails them: no resets allowed); the late ones are
            # completed beside both.
            claimed = [claim(store) for _ in range(2 * JOBS_PER_ROUND)]
            for job in claimed[:JOBS_PER_ROUND]:
                store.transitions.mark_failed("batches", job.id, "ex", "no")
            clock.advance(2)
            late = [claim(store) for _ in range(8)]  # claimed now: not stalled

            def complete_late(jobs: list[Claim] = late) -> None:
                for job in jobs:
                    store.transitions.mark_complete("batches", job.id, "ex")

            results = side_by_side(store.retention.delete_expired, store.resetter.reset_stalled, complete_late)
            reset = results["reset_stalled"]
            assert isinstance(reset, ResetResult) and len(reset.failed) == JOBS_PER_ROUND
            deleted = results["delete_expired"]
            assert isinstance(deleted, int) and deleted >= JOBS_PER_ROUND
            check(store)
    finally:
        store.close()
