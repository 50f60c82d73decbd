"""Maintenance services: the server's periodic work beside the requests, one service per file (the stall resetter,
retention), each run as its own task by the app's lifespan (fleet/app.py) and stopped with it.

A service only schedules: what a round changes is the store's (fleet/store/resetter.py, fleet/store/retention.py),
by the rules of fleet/store/lifecycle.py. A round that hits a database outage reports it to the app (one log line
per outage, 503s meanwhile) and the service tries again next round; any other error is logged with its traceback
and does not end the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fleet.store import Store
from fleet.store.errors import DATABASE_ERRORS

log = logging.getLogger("fleet.server")

# A sleep that overran its interval by more than this means the process was frozen (SIGSTOP, a stalled host).
FROZEN_SLACK_SECONDS = 2.0


class Service:
    name = "maintenance"

    def __init__(self, store: Store, interval: float, on_database_error: Callable[[BaseException], None]) -> None:
        self.store = store
        self.interval = interval
        self.on_database_error = on_database_error

    async def round(self) -> None:
        raise NotImplementedError

    def frozen(self) -> None:
        """Called before a round when the process was frozen during the sleep before it."""

    async def run(self) -> None:
        while True:
            slept = time.monotonic()
            await asyncio.sleep(self.interval)
            if time.monotonic() - slept > self.interval + FROZEN_SLACK_SECONDS:
                self.frozen()
            try:
                await self.round()
            except DATABASE_ERRORS as exc:
                self.on_database_error(exc)
            except Exception:  # a bug must not end the service for the rest of the server's life
                log.exception("%s round failed; retrying in %.1fs", self.name, self.interval)


class Running:
    """The services of one server, each in its own task."""

    def __init__(self, services: list[Service]) -> None:
        self.tasks = [asyncio.create_task(s.run(), name=f"maintenance-{s.name}") for s in services]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
