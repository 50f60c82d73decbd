from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fleet.store import Store, StoreConfig


class FakeClock:
    """The store's clock, moved by hand: retry and resetter tests run without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[Store]:
    s = Store.open(
        database_url,
        clock,
        StoreConfig(max_retries=2, retry_delay_seconds=30, stalled_job_seconds=25, max_resets=3),
    )
    s.queues.ensure(["batches", "codeintel"])
    yield s
    s.close()
