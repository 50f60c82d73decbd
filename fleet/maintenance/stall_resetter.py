"""The stall resetter: every FLEET_RESETTER_INTERVAL_SECONDS, jobs whose executor stopped heartbeating go back to
their queue or fail (fleet/store/resetter.py decides which, and holds off after an outage or a freeze)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool

from fleet.maintenance import Service
from fleet.store import Store

log = logging.getLogger("fleet.server")


class StallResetter(Service):
    name = "resetter"

    def __init__(
        self,
        store: Store,
        interval: float,
        on_database_error: Callable[[BaseException], None],
        stalled_job_seconds: float,
    ) -> None:
        super().__init__(store, interval, on_database_error)
        self.stalled_job_seconds = stalled_job_seconds

    def frozen(self) -> None:
        # Executors could not heartbeat to a frozen server either.
        self.store.resetter.hold()

    async def round(self) -> None:
        result = await run_in_threadpool(self.store.resetter.reset_stalled)
        if result.recovered:
            log.warning(
                "database reachable again after %.1fs; no job is reset for stalling for the next %gs",
                result.outage_seconds,
                self.stalled_job_seconds,
            )
        if result.requeued:  # the store woke waiting executors after its commit
            log.warning("requeued stalled jobs %s", [j for j, _ in result.requeued])
        if result.failed:
            log.warning("failed jobs that stalled too many times: %s", result.failed)
