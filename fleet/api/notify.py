"""Wakes long-polling dequeues the moment a job becomes available in their queue.

Store calls happen in worker threads, waiters live on the event loop: notify() is thread-safe and hands the
wake-up to the loop. Waiters also re-check the store on a short period, which covers what no notification
announces (a retry delay running out, another server process writing to the same PostgreSQL database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class QueueNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _event(self, queue: str) -> asyncio.Event:
        ev = self._events.get(queue)
        if ev is None:
            ev = self._events[queue] = asyncio.Event()
        return ev

    def _fire(self, queue: str) -> None:
        ev = self._events.pop(queue, None)
        if ev is not None:
            ev.set()

    def notify(self, queues: Iterable[str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for q in set(queues):
            loop.call_soon_threadsafe(self._fire, q)

    def snapshot(self, queues: Iterable[str]) -> list[asyncio.Event]:
        """Events to wait on; take them before checking the store so a job submitted in between is not missed."""
        return [self._event(q) for q in queues]

    @staticmethod
    async def wait(events: list[asyncio.Event], timeout: float) -> None:
        if timeout <= 0:
            return
        if len(events) == 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events[0].wait(), timeout)
            return
        tasks = [asyncio.ensure_future(ev.wait()) for ev in events]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
