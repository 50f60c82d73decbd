"""Long polls are woken by events, one waiter per job made ready, with no statements between wake-ups.

The server runs in-process (the ASGI app with its lifespan) so a SQLAlchemy event listener sees every statement
the store sends. The safety re-check is set to an hour unless a test is about it, so anything that wakes a
waiter here is an event: a submission, an errored job's retry delay, a signal passed on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from fleet.api.notify import QueueNotifier, Signal
from fleet.app import create_app
from fleet.db.direct import STATEMENT_LISTENERS
from fleet.settings import ServerSettings
from fleet.store import Store, StoreConfig

EXECUTOR_TOKEN = "e" * 24
API_TOKEN = "api-token-for-the-wakeup-tests"
SPEC = {"queue": "batches", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}


@dataclass
class Statements:
    log: list[str] = field(default_factory=list)

    def claims(self) -> int:
        # The claim is the only UPDATE that returns the job's spec.
        return sum(1 for s in self.log if s.startswith("UPDATE jobs") and " spec" in s.rpartition("RETURNING")[2])


@dataclass
class Server:
    client: httpx.AsyncClient
    store: Store
    notifier: QueueNotifier
    statements: Statements

    async def poll(self, name: str, wait: float = 30, queue: str = "batches") -> httpx.Response:
        return await self.client.post(
            f"/.executors/queue/{queue}/dequeue",
            params={"wait": wait},
            json={"executorName": name},
            headers={"Authorization": f"token-executor {EXECUTOR_TOKEN}"},
        )

    async def submit(self, queue: str = "batches") -> int:
        r = await self.client.post(
            "/api/v1/jobs", json={**SPEC, "queue": queue}, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        r.raise_for_status()
        job_id: int = r.json()["id"]
        return job_id

    async def until(self, what: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running(database_url: str, recheck: float = 3600, retry_delay: float = 10) -> AsyncIterator[Server]:
    settings = ServerSettings(
        database_url=database_url,
        executors_access_token=EXECUTOR_TOKEN,
        api_token=API_TOKEN,
        long_poll_recheck_seconds=recheck,
        resetter_interval_seconds=3600,
    )  # type: ignore[call-arg]
    store = Store.open(database_url, config=StoreConfig(retry_delay_seconds=retry_delay))
    statements = Statements()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.log.append(statement)

    for engine in store.db.engines():
        event.listen(engine, "before_cursor_execute", record)
    # The protocol's hot statements (the claim among them) run below SQLAlchemy's events: fleet.db.direct.
    STATEMENT_LISTENERS.append(statements.log.append)
    app = create_app(settings, store=store)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fleet", timeout=60) as client:
                yield Server(client, store, app.state.notifier, statements)
    finally:
        STATEMENT_LISTENERS.remove(statements.log.append)
        store.close()


async def park(server: Server, count: int, wait: float = 30, queue: str = "batches") -> list[asyncio.Task[Any]]:
    """Start `count` long polls and return once all are parked with their first (empty) claim done."""
    sleeping = server.notifier.sleeping
    polls = [asyncio.create_task(server.poll(f"e{i}", wait, queue)) for i in range(count)]
    await server.until(lambda: server.notifier.sleeping == sleeping + count)
    return polls


def test_a_submission_wakes_exactly_one_waiter(database_url: str) -> None:
    """20 parked polls, one job: one claim, one 200, 19 still parked. Then 19 jobs: 19 claims, all served."""

    async def scenario() -> None:
        async with running(database_url) as server:
            polls = await park(server, 20)
            before = len(server.statements.log)
            await server.submit()
            await server.until(lambda: sum(p.done() for p in polls) == 1)
            await asyncio.sleep(0.3)  # room for a herd to show itself, if there were one
            after = server.statements.log[before:]
            assert Statements(after).claims() == 1, after
            assert sum(p.done() for p in polls) == 1
            assert server.notifier.waiting("batches") == 19
            for _ in range(19):
                await server.submit()
            responses = await asyncio.gather(*polls)
            assert [r.status_code for r in responses] == [200] * 20
            assert len({r.json()["id"] for r in responses}) == 20
            assert Statements(server.statements.log[before:]).claims() == 20

    asyncio.run(scenario())


def test_idle_waiters_send_no_statements(database_url: str) -> None:
    """Parked polls, and polls arriving while others are parked, cost no SQL until a job is announced."""

    async def scenario() -> None:
        async with running(database_url) as server:
            polls = await park(server, 50)
            before = len(server.statements.log)
            await asyncio.sleep(1.5)
            assert server.statements.log[before:] == []
            # New polls (executors re-poll every few seconds) park without a claim while others sleep: a job
            # ready in the queue would have woken one of those.
            polls += await park(server, 50)
            assert server.statements.log[before:] == []
            await server.submit()
            await server.until(lambda: sum(p.done() for p in polls) == 1)
            for p in polls:
                p.cancel()

    asyncio.run(scenario())


def test_a_retry_delay_wakes_a_waiter_without_any_recheck(database_url: str) -> None:
    """An errored job comes back to a parked poll when its delay runs out: a timer, not a re-check."""

    async def scenario() -> None:
        async with running(database_url, retry_delay=0.5) as server:
            job_id = await server.submit()
            first = await server.poll("e-first", wait=0)
            assert first.status_code == 200 and first.json()["id"] == job_id
            r = await server.client.post(
                "/.executors/queue/batches/markErrored",
                json={"executorName": "e-first", "jobId": job_id, "errorMessage": "boom"},
                headers={"Authorization": f"Bearer {first.json()['token']}"},
            )
            assert r.status_code == 204, r.text
            (poll,) = await park(server, 1)
            before = len(server.statements.log)
            response = await poll
            assert response.status_code == 200 and response.json()["id"] == job_id
            assert Statements(server.statements.log[before:]).claims() == 1
            assert server.notifier.handed["probe"] == 0

    asyncio.run(scenario())


def test_one_shared_recheck_per_queue(tmp_path: Any) -> None:
    """With 30 waiters and a 0.2 s re-check, each re-check is one claim for the whole queue, not one per waiter."""

    async def scenario() -> None:
        async with running(f"sqlite:///{tmp_path}/fleet.db", recheck=0.2) as server:
            polls = await park(server, 30)
            await server.until(lambda: server.notifier.sleeping == 30)
            before, probes = len(server.statements.log), server.notifier.handed["probe"]
            await server.until(lambda: server.notifier.handed["probe"] >= probes + 3)
            await server.until(lambda: server.notifier.sleeping == 30)  # the probed waiter parked again
            claims = Statements(server.statements.log[before:]).claims()
            assert claims == server.notifier.handed["probe"] - probes >= 3
            # A re-check finds a job nothing announced (inserted behind the server's back) and hands it out.
            server.store.db.ready_listeners.clear()
            await server.submit()
            await server.until(lambda: any(p.done() for p in polls), timeout=10)
            assert sum(p.done() for p in polls) == 1
            for p in polls:
                p.cancel()

    asyncio.run(scenario())


def test_a_signal_is_passed_on_when_its_waiter_has_gone() -> None:
    async def scenario() -> None:
        notifier = QueueNotifier()
        notifier.bind(asyncio.get_running_loop())
        a, b = notifier.park(["q"]), notifier.park(["q"])
        notifier.notify(["q"])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert a.future.done() and not b.future.done()  # the longest parked waiter, only
        notifier.leave(a)  # e.g. its client disconnected before claiming
        assert b.take() == Signal("q")
        assert notifier.handed == {"ready": 1, "probe": 0, "passed": 1, "dropped": 0}

    asyncio.run(scenario())


def test_a_waiter_that_wins_another_queues_job_passes_its_signal_on(tmp_path: Any) -> None:
    """A poll on [batches, codeintel] woken for codeintel may claim an older batches job: the codeintel job then
    still reaches the codeintel poll, without any re-check."""

    async def scenario() -> None:
        async with running(f"sqlite:///{tmp_path}/fleet.db") as server:
            (multi,) = [
                asyncio.create_task(
                    server.client.post(
                        "/.executors/queue/dequeue",
                        params={"wait": 30},
                        json={"executorName": "multi", "queues": ["batches", "codeintel"]},
                        headers={"Authorization": f"token-executor {EXECUTOR_TOKEN}"},
                    )
                )
            ]
            await server.until(lambda: server.notifier.sleeping == 1)
            single = await park(server, 1, queue="codeintel")
            assert server.notifier.waiting("codeintel") == 2
            # Both commit before the loop hands out signals: the multi poll is woken first, by codeintel's.
            server.store.db.ready_listeners.clear()
            batches_job = await asyncio.to_thread(server.store.jobs.submit, _submission("batches"))
            codeintel_job = await asyncio.to_thread(server.store.jobs.submit, _submission("codeintel"))
            server.notifier.notify(["codeintel"])
            got = await multi
            assert got.json()["id"] == batches_job.id
            other = await single[0]
            assert other.json()["id"] == codeintel_job.id
            assert server.notifier.handed["passed"] == 1 and server.notifier.handed["probe"] == 0

    asyncio.run(scenario())


def _submission(queue: str) -> Any:
    from fleet.schemas import JobSubmission

    return JobSubmission(**{**SPEC, "queue": queue})


@pytest.mark.parametrize("count", [3])
def test_expired_waiters_leave_their_queues(tmp_path: Any, count: int) -> None:
    async def scenario() -> None:
        async with running(f"sqlite:///{tmp_path}/fleet.db") as server:
            polls = await park(server, count, wait=0.2)
            assert [r.status_code for r in await asyncio.gather(*polls)] == [204] * count
            assert server.notifier.waiting("batches") == 0

    asyncio.run(scenario())
