"""The maintenance services, each on its own: a round's effect on the store (both backends), what a round logs,
and that neither a database outage nor a bug ends a service."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.exc import OperationalError

from fleet.maintenance import Running, Service
from fleet.maintenance.retention import RetentionService
from fleet.maintenance.stall_resetter import StallResetter
from fleet.schemas import JobSubmission
from fleet.store import Store, StoreConfig
from tests.fleet.conftest import FakeClock

STEP = {"image": "busybox", "commands": ["true"]}


def _submit(store: Store) -> int:
    return int(store.jobs.submit(JobSubmission(queue="batches", dockerSteps=[STEP])).id)  # type: ignore[list-item]


def test_stall_resetter_requeues_a_stalled_job_and_says_so(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = _submit(store)
    store.jobs.claim(["batches"], "e")
    clock.advance(26)  # past stalled_job_seconds=25
    service = StallResetter(store, 0.01, lambda exc: None, stalled_job_seconds=25)
    with caplog.at_level(logging.WARNING, logger="fleet.server"):
        asyncio.run(service.round())
    assert store.jobs.get(job_id).state == "queued"
    assert f"requeued stalled jobs [{job_id}]" in caplog.text


def test_stall_resetter_holds_off_after_a_freeze(store: Store, clock: FakeClock) -> None:
    job_id = _submit(store)
    store.jobs.claim(["batches"], "e")
    clock.advance(26)
    service = StallResetter(store, 0.01, lambda exc: None, stalled_job_seconds=25)
    service.frozen()  # executors could not heartbeat to a frozen server: no reset for a stall time
    asyncio.run(service.round())
    assert store.jobs.get(job_id).state == "processing"
    clock.advance(26)
    asyncio.run(service.round())
    assert store.jobs.get(job_id).state == "queued"


def test_retention_deletes_expired_jobs(database_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(database_url, clock, StoreConfig(job_retention_days=3600 / 86400))
    try:
        store.queues.ensure(["batches"])
        old, fresh = _submit(store), _submit(store)
        for _ in (old, fresh):
            store.jobs.claim(["batches"], "e")
        store.transitions.mark_complete("batches", old, "e")
        clock.advance(3601)
        store.transitions.mark_complete("batches", fresh, "e")
        with caplog.at_level(logging.INFO, logger="fleet.server"):
            asyncio.run(RetentionService(store, 0.01, lambda exc: None).round())
        assert [j.id for j in store.jobs.list()] == [fresh]
        assert "deleted 1 finished jobs past their retention" in caplog.text
    finally:
        store.close()


class Flaky(Service):
    """Fails its first rounds (an outage, then a bug), then counts."""

    name = "flaky"

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(None, 0.001, errors.append)  # type: ignore[arg-type]
        self.calls = 0
        self.done = asyncio.Event()

    async def round(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        if self.calls == 2:
            raise RuntimeError("a bug")
        self.done.set()


def test_a_service_survives_outages_and_bugs(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    async def main() -> Flaky:
        service = Flaky(errors)
        running = Running([service])
        await asyncio.wait_for(service.done.wait(), 60)
        await running.stop()
        return service

    with caplog.at_level(logging.ERROR, logger="fleet.server"):
        service = asyncio.run(main())
    assert service.calls >= 3
    assert [type(e) for e in errors] == [OperationalError]  # the outage went to the app, once
    assert "flaky round failed; retrying in" in caplog.text and "RuntimeError: a bug" in caplog.text
