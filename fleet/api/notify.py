"""Wakes long-polling dequeues the moment a job becomes available in their queue.

Store calls happen in worker threads, waiters live on the event loop: notify() is thread-safe and hands the
wake-up to the loop. On PostgreSQL the store also announces ready jobs with NOTIFY, and a DatabaseListener
relays them, so server processes sharing a database wake each other's waiters. Waiters also re-check the store
on a short period, which covers what nothing announces (a retry delay running out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable

log = logging.getLogger("fleet.server")


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


class DatabaseListener:
    """Wakes this process's waiters when any server process on the same PostgreSQL database announces a job.

    A daemon thread holds one LISTEN connection; it reconnects with jittered backoff if the database goes away.
    Meanwhile waiters still re-check the store on their own period, so a lost announcement only delays pickup.
    """

    def __init__(self, dsn: str, channel: str, notifier: QueueNotifier) -> None:
        self.dsn = dsn
        self.channel = channel
        self.notifier = notifier
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._down = False
        self._thread = threading.Thread(target=self._run, name="fleet-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg
        import tenacity

        # The jittered backoff of every call to an unreachable party (docs/executor.md), capped lower: a lost
        # LISTEN only delays pickup until the waiters' own re-check.
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(psycopg.Error),
            wait=tenacity.wait_random_exponential(multiplier=0.5, max=10.0),
            stop=lambda _: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=lambda state: self._lost(state.outcome.exception() if state.outcome else None),
            reraise=True,
        )
        while not self._stop.is_set():
            with contextlib.suppress(psycopg.Error):
                retrying(self._listen)  # returns when an established LISTEN was lost: a fresh backoff

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _lost(self, exc: BaseException | None) -> None:
        self.listening.clear()
        if not self._down:  # one line per outage, not one per attempt
            self._down = True
            log.warning("listening for ready jobs failed (%s); retrying with backoff", exc)

    def _listen(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.listening.set()
                if self._down:
                    self._down = False
                    log.warning("listening for ready jobs again")
                while not self._stop.is_set():
                    # The timeout bounds how long stop() waits for this thread.
                    for note in conn.notifies(timeout=0.5):
                        self.notifier.notify([note.payload])
        except psycopg.Error as exc:
            if not self.listening.is_set():
                raise
            self._lost(exc)
