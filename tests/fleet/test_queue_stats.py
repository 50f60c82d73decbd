"""Queue statistics stay exact through every transition and after a crash, on SQLite and PostgreSQL.

stats() counts active jobs from the claim index and sums finished ones from counters kept by triggers
(migration 0003); each check here compares it with a plain GROUP BY over the whole jobs table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from fleet.db.models import jobs
from fleet.states import JobState
from fleet.store import Store
from tests.fleet.conftest import FakeClock
from tests.fleet.test_store import submit

REPO = Path(__file__).resolve().parents[2]


def counted(store: Store) -> dict[tuple[str, str], int]:
    with store.db.read() as conn:
        rows = conn.execute(select(jobs.c.queue, jobs.c.state, func.count()).group_by(jobs.c.queue, jobs.c.state))
        return {(q, s): n for q, s, n in rows}


def reported(store: Store) -> dict[tuple[str, str], int]:
    out = {}
    for st in store.queues.stats():
        for state in JobState:
            n = getattr(st, state.value)
            if n:
                out[(st.name, state.value)] = n
    return out


def check(store: Store) -> dict[tuple[str, str], int]:
    now = counted(store)
    assert reported(store) == now
    return now


def test_counts_exact_through_every_transition(store: Store, clock: FakeClock) -> None:
    a, b, c, d, e = (submit(store) for _ in range(5))
    other = submit(store, queue="codeintel")
    assert check(store) == {("batches", "queued"): 5, ("codeintel", "queued"): 1}

    ja = store.jobs.claim(["batches"], "ex")  # claim
    assert ja is not None and ja.id == a
    check(store)
    store.transitions.mark_complete("batches", a, "ex")  # complete
    assert check(store)[("batches", "completed")] == 1

    assert store.jobs.claim(["batches"], "ex") is not None  # b: error -> retry -> error -> error: failed
    store.transitions.mark_errored("batches", b, "ex", "boom")
    assert check(store)[("batches", "errored")] == 1
    for _ in range(2):
        clock.advance(31)
        job = store.jobs.claim(["batches"], "ex")
        assert job is not None and job.id == b
        store.transitions.mark_errored("batches", b, "ex", "boom")
        check(store)
    assert store.jobs.get(b).state == "failed"

    assert store.jobs.claim(["batches"], "ex") is not None  # c: failed outright
    store.transitions.mark_failed("batches", c, "ex", "no")
    assert check(store)[("batches", "failed")] == 2

    store.jobs.cancel(d)  # cancel a queued job
    assert check(store)[("batches", "canceled")] == 1
    assert store.jobs.claim(["batches"], "ex") is not None  # e: canceled while processing, then reported
    store.jobs.cancel(e)
    check(store)
    store.transitions.mark_complete("batches", e, "ex")
    assert check(store)[("batches", "canceled")] == 2

    job = store.jobs.claim(["codeintel"], "ex")  # reset: requeued, then failed after max resets
    assert job is not None
    for _ in range(4):
        clock.advance(26)
        store.resetter.reset_stalled()
        check(store)
        store.jobs.claim(["codeintel"], "ex")
    assert store.jobs.get(other).state == "failed"
    assert check(store)[("codeintel", "failed")] == 1

    store.db.config = replace(store.db.config, job_retention_days=60 / 86400)  # retention deletes finished jobs
    clock.advance(3600)
    assert store.retention.delete_expired() == 6
    assert check(store) == {}
    submit(store)
    assert check(store) == {("batches", "queued"): 1}


def test_finished_jobs_inserted_directly_are_counted(store: Store) -> None:
    """Rows written by hand (an import, a restore) are counted too: the triggers sit in the database."""
    job_id = submit(store)
    with store.db.engine.begin() as conn:
        cols = [c for c in jobs.c if c.name not in ("id", "token_hash", "state")]
        conn.execute(
            jobs.insert().from_select(
                [c.name for c in cols] + ["state"],
                select(*cols, func.cast("completed", jobs.c.state.type)).where(jobs.c.id == job_id),
            )
        )
        conn.execute(jobs.delete().where(jobs.c.id == job_id))
    assert check(store) == {("batches", "completed"): 1}


CHURN = """
import sys
from fleet.schemas import JobSubmission
from fleet.store import Store
store = Store.open(sys.argv[1])
store.queues.ensure(["batches"])
spec = {"queue": "batches", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}
n = 0
while True:
    store.jobs.submit(JobSubmission(**spec))
    job = store.jobs.claim(["batches"], "ex")
    if n % 3 == 0:
        store.transitions.mark_complete("batches", job.id, "ex")
    elif n % 3 == 1:
        store.transitions.mark_failed("batches", job.id, "ex", "no")
    n += 1
    if n == 50:
        print("running", flush=True)
"""


def test_counts_exact_after_a_crash(database_url: str) -> None:
    """A process killed with SIGKILL in the middle of submits, claims and completions leaves exact counts."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHURN, database_url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"running\n"
        time.sleep(0.5)  # let it churn on, so the kill lands mid-transaction more often than not
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = Store.open(database_url)
    try:
        counts = check(store)
        assert counts[("batches", "completed")] >= 17 and counts[("batches", "failed")] >= 16
    finally:
        store.close()
