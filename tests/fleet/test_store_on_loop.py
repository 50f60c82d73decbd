"""fleet/db/on_loop.py: store calls from async code run where they should. On PostgreSQL the protocol's hot
statements run on the event loop through the async driver, a call that needs a blocking connection moves to a
worker thread only while it has changed nothing, and loop connections belong to their loop; on SQLite every
call runs inline. Real databases, real threads: which thread ran each statement is what is recorded."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text

from fleet.db import direct, on_loop
from fleet.schemas import JobSubmission
from fleet.store import Store, StoreConfig, database
from fleet.store.errors import NotOwned
from tests.support.postgres import PostgresCluster

SUBMISSION = JobSubmission(queue="batches", dockerSteps=[{"image": "busybox", "commands": ["true"]}])
ENTRY = {
    "key": "step.0",
    "command": ["true"],
    "startTime": datetime(2026, 12, 4, tzinfo=UTC),
    "exitCode": 0,
    "out": "ok",
}


class Threads:
    """The thread of every statement: direct ones (fleet.db.direct's listeners) and the engines' own."""

    def __init__(self, store: Store) -> None:
        self.direct: list[str] = []
        self.sql: list[str] = []  # the direct statements' SQL
        self.blocking: list[str] = []
        self._engines = store.db.engines()

    def _on_direct(self, sql: str) -> None:
        self.direct.append(threading.current_thread().name)
        self.sql.append(sql)

    def _on_blocking(self, *_: Any) -> None:
        self.blocking.append(threading.current_thread().name)

    def __enter__(self) -> Threads:
        direct.STATEMENT_LISTENERS.append(self._on_direct)
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._on_blocking)
        return self

    def __exit__(self, *_: object) -> None:
        direct.STATEMENT_LISTENERS.remove(self._on_direct)
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._on_blocking)

    def clear(self) -> None:
        self.direct.clear()
        self.sql.clear()
        self.blocking.clear()


@pytest.fixture
def pg_store(pg_cluster: PostgresCluster) -> Iterator[Store]:
    s = Store.open(pg_cluster.create_database(), config=StoreConfig())
    s.queues.ensure(["batches"])
    yield s
    s.close()


def test_the_hot_path_runs_where_it_should(store: Store) -> None:
    """A job's submission, claim, log entry and finish: on the loop's own thread (PostgreSQL: awaiting the
    async driver; SQLite: inline); a read through a store connection in a worker thread on PostgreSQL."""
    here = threading.current_thread().name
    hop = "store" if store.db.runs_on_loop else here  # the worker threads' name prefix (fleet/store/__init__.py)

    async def scenario() -> None:
        with Threads(store) as seen:
            job = await store.call(store.jobs.submit, SUBMISSION)
            claim = await store.call(store.jobs.claim, ["batches"], "exec-a")
            assert claim is not None and claim.id == job.id
            entry_id = await store.call(store.logs.add, "batches", job.id, "exec-a", ENTRY, token=claim.token)
            outcome = await store.call(store.transitions.mark_complete, "batches", job.id, "exec-a", claim.token)
            assert outcome.state == "completed" and entry_id > 0
            assert len(seen.direct) >= 4 and set(seen.direct) == {here}  # the NOTIFY of a submission too
            assert seen.blocking == []
            seen.clear()
            assert (await store.call(store.jobs.get, job.id)).state == "completed"
            assert seen.direct == [] and seen.blocking and all(t.startswith(hop) for t in seen.blocking)

    asyncio.run(scenario())


def test_a_refused_write_moves_to_a_thread_having_changed_nothing(pg_store: Store) -> None:
    """A log entry with a job's token from the wrong executor: its statement inserts nothing on the loop, the
    refusal needs a read of the token's scope through a store connection, so the call runs again in a thread and
    is refused there; no entry is written."""

    async def scenario() -> None:
        job = await pg_store.call(pg_store.jobs.submit, SUBMISSION)
        claim = await pg_store.call(pg_store.jobs.claim, ["batches"], "exec-a")
        assert claim is not None
        with Threads(pg_store) as seen, pytest.raises(NotOwned):
            await pg_store.call(pg_store.logs.add, "batches", job.id, "exec-b", ENTRY, token=claim.token)
        loop_thread = threading.current_thread().name
        assert seen.direct[0] == loop_thread and seen.direct[1].startswith("store") and len(seen.direct) == 2
        assert seen.blocking and all(t.startswith("store") for t in seen.blocking)
        assert await pg_store.call(pg_store.logs.for_job, job.id) == []

    asyncio.run(scenario())


def test_a_blocking_connection_after_a_direct_write_is_an_error_not_a_rerun(pg_store: Store) -> None:
    """A store function that changed rows on the loop and then needs a blocking connection cannot move to a
    thread (it would run its write twice): it fails loudly, and its write happened exactly once."""

    def submit_then_read() -> Any:
        job = pg_store.jobs.submit(SUBMISSION)
        return pg_store.jobs.get(job.id)

    pg_store.jobs.submit(SUBMISSION)  # now the queue is known: a submission is one direct statement

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="after a direct statement changed rows"):
            await pg_store.call(submit_then_read)
        assert len(await pg_store.call(pg_store.jobs.list)) == 2

    asyncio.run(scenario())


def test_loop_connections_belong_to_their_loop_and_close_with_the_store(
    pg_cluster: PostgresCluster,
) -> None:
    """Two event loops in turn (as tests and restarts make them): each gets connections of its own; aclose()
    closes the loop's sessions, so none is left behind."""
    url = pg_cluster.create_database()
    store = Store.open(url, config=StoreConfig())
    store.queues.ensure(["batches"])
    before, _ = pg_cluster.sessions(url)

    async def cycle() -> None:
        job = await store.call(store.jobs.submit, SUBMISSION)
        assert (await store.call(store.jobs.claim, ["batches"], "exec-a")) is not None
        assert job.id > 0

    asyncio.run(cycle())
    asyncio.run(cycle())  # the first loop's connections are unusable here: new ones are made

    async def close() -> None:
        await cycle()
        await store.aclose()

    asyncio.run(close())
    # The first loops' connections were dropped (another loop cannot close them): they close when collected.
    # Backends leave pg_stat_activity a moment after their client hangs up, so this waits for that.
    gc.collect()
    deadline = time.monotonic() + 60
    while (now := pg_cluster.sessions(url)[0]) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now <= before


def test_a_submission_on_the_loop_notifies_after_its_reply_and_survives_a_failed_notify(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The NOTIFY to other server processes runs after the submission's call, as a call of its own; one that
    fails (here: sent with a payload PostgreSQL refuses, over its 8,000-byte limit) is logged, and the job it
    announced stays queued once, as submitted."""
    pg_store.jobs.submit(SUBMISSION)  # the queue is known: a submission is one direct statement
    real = database.notify_statement

    def oversized(dialect: Any, note: Any) -> Any:
        stmt, params = real(dialect, note)
        return stmt, {**params, "payload": "x" * 9000}

    monkeypatch.setattr(database, "notify_statement", oversized)

    async def scenario() -> None:
        with Threads(pg_store) as seen, caplog.at_level(logging.WARNING, logger="fleet.db.on_loop"):
            job = await pg_store.call(pg_store.jobs.submit, SUBMISSION)
            assert [s.split()[0] for s in seen.sql] == ["INSERT"]  # the reply did not wait for the NOTIFY
            await on_loop.drain()
            assert [s.split()[0] for s in seen.sql] == ["INSERT", "SELECT"]
        assert "a deferred store statement failed" in caplog.text and "payload string too long" in caplog.text
        assert (await pg_store.call(pg_store.jobs.get, job.id)).state == "queued"
        assert len(await pg_store.call(pg_store.jobs.list)) == 2

    asyncio.run(scenario())


def test_loop_calls_beyond_the_pool_wait_for_a_connection_and_open_no_sessions(
    pg_cluster: PostgresCluster,
) -> None:
    """More hot calls at once than the loop's pool holds (fleet/db/dialect.py, LOOP_POOL_SIZE): they wait for a
    connection, every job is handed out once, and a second burst opens no backend session."""
    from fleet.db.dialect import LOOP_POOL_SIZE

    url = pg_cluster.create_database()
    store = Store.open(url, config=StoreConfig())
    store.queues.ensure(["batches"])
    calls = 3 * LOOP_POOL_SIZE

    async def burst() -> list[int]:
        await asyncio.gather(*(store.call(store.jobs.submit, SUBMISSION) for _ in range(calls)))
        claims = await asyncio.gather(*(store.call(store.jobs.claim, ["batches"], f"e{i}") for i in range(calls)))
        return [c.id for c in claims if c is not None]

    async def scenario() -> None:
        first = await burst()
        _, opened = pg_cluster.sessions(url)
        second = await burst()
        assert pg_cluster.sessions(url)[1] == opened  # no session opened by the second burst
        assert len(set(first + second)) == len(first + second) == 2 * calls
        await store.aclose()

    asyncio.run(scenario())


def test_a_call_cancelled_mid_statement_leaves_no_connection_behind(pg_store: Store) -> None:
    """A call on the loop cancelled while its statement runs (as uvicorn cancels requests at a forced shutdown):
    psycopg cancels the query in the server and reads the connection clear before the pool takes it back, so
    the calls after it (on that same connection: one at a time, they reuse it) get their own answers."""
    slow = text("SELECT pg_sleep(3), 'slow'")

    def statement(sql: Any) -> Any:
        return pg_store.db._direct.execute(sql, {})

    async def scenario() -> None:
        task = asyncio.create_task(pg_store.call(statement, slow))
        await asyncio.sleep(0.5)  # sent, and waiting on the database
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for i in range(20):
            rows = await pg_store.call(statement, text(f"SELECT {i}"))
            assert [tuple(r) for r in rows] == [(i,)]
        await pg_store.aclose()

    asyncio.run(scenario())


def test_calls_one_at_a_time_reuse_the_connection_returned_last(pg_store: Store) -> None:
    """Both PostgreSQL pools hand out the connection returned last (LIFO), not the one idle longest: a job's
    pickup is two statements in a row (the submission's insert, the woken dequeue's claim), and the second
    then finds a backend that has just run. Several connections are opened first, so a FIFO pool would
    rotate through them."""
    backend = text("SELECT pg_backend_pid(), pg_sleep(0.2)")
    pid = text("SELECT pg_backend_pid()")

    def statement(sql: Any) -> int:
        return int(pg_store.db._direct.execute(sql, {})[0][0])

    def blocking(sql: Any, hold: threading.Barrier | None = None) -> int:
        with pg_store.db.read_one() as conn:
            got = int(conn.execute(sql).scalar_one())
            if hold is not None:
                hold.wait(timeout=60)  # every thread holds a connection at once: the pool opens four
            return got

    async def scenario() -> None:
        opened = await asyncio.gather(*(pg_store.call(statement, backend) for _ in range(4)))
        assert len(set(opened)) == 4  # four connections in the loop's pool
        in_turn = [await pg_store.call(statement, pid) for _ in range(8)]
        assert len(set(in_turn)) == 1, in_turn
        await pg_store.aclose()

    hold = threading.Barrier(4)
    at_once: list[int] = []
    threads = [threading.Thread(target=lambda: at_once.append(blocking(pid, hold))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(at_once)) == 4  # four connections in the threads' pool
    in_turn = [blocking(pid) for _ in range(8)]
    assert len(set(in_turn)) == 1, in_turn
    asyncio.run(scenario())
