"""Retention: every FLEET_RESETTER_INTERVAL_SECONDS, finished jobs past FLEET_JOB_RETENTION_DAYS are deleted with
their logs, in small batches (fleet/store/retention.py)."""

from __future__ import annotations

import logging

from fastapi.concurrency import run_in_threadpool

from fleet.maintenance import Service

log = logging.getLogger("fleet.server")


class RetentionService(Service):
    name = "retention"

    async def round(self) -> None:
        deleted = await run_in_threadpool(self.store.retention.delete_expired)
        if deleted:
            log.info("deleted %d finished jobs past their retention", deleted)
