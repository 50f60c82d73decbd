"""Wakes long-polling dequeues when a job becomes ready, one waiter per job (docs/control-plane.md, "Long polling").

A parked dequeue is a Waiter in the lists of the queues it polls. Each job made ready is one Signal, handed to
exactly one waiter (the longest parked); that waiter runs one claim. So 1,000 idle executors cost nothing between
wake-ups, and a submission costs one claim, not one per waiter. A signal is never lost: a waiter that leaves
(deadline, disconnect, cancellation) before using its signal, or whose claim wins a job of another queue,
hands it to the next waiter.

What makes jobs ready, and so hands out signals:
- the store, after the commit of a submission, a requeue or an errored job (fleet.db.dialect.announce_ready);
- a retry delay running out: one timer per queue for the earliest due job, not a poll per waiter;
- on PostgreSQL, a NOTIFY from another server process (this process's own NOTIFYs are ignored, as the store
  already woke its waiters in memory);
- a safety re-check per queue with waiters, every `recheck` seconds, for what nothing announced (a NOTIFY lost
  while the listener reconnected): a probe signal, passed on while its claims find jobs.

Store calls may run in worker threads, waiters live on the event loop: notify() is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fleet.db.dialect import ReadyAnnouncement, parse_ready_payload
from fleet.store.database import Clock, Database, utcnow

log = logging.getLogger("fleet.server")


@dataclass(frozen=True)
class Signal:
    """One job ready in `queue` (or, for a probe, maybe some): worth exactly one claim by one waiter."""

    queue: str
    probe: bool = False


@dataclass(eq=False)
class Waiter:
    queues: tuple[str, ...]
    future: asyncio.Future[Signal | None]
    parked: bool = field(default=False)  # in its queues' lists: a signal may be handed to it
    sleeping: bool = field(default=False)  # blocked in wait(), no signal yet

    def take(self) -> Signal | None:
        """The signal handed to this waiter since the last take, if any."""
        if not self.future.done():
            return None
        signal = self.future.result()
        self.future = self.future.get_loop().create_future()
        return signal


class QueueNotifier:
    def __init__(self, recheck_seconds: float = 1.0) -> None:
        self.recheck_seconds = recheck_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Clock = utcnow
        # Per queue, the parked waiters in the order they parked (dicts keep order and remove in O(1)).
        self._waiting: dict[str, dict[Waiter, None]] = {}
        self._due: dict[str, list[datetime]] = {}  # per queue, a heap of retry delays running out
        self._due_timers: dict[str, asyncio.TimerHandle] = {}
        self._probe_timers: dict[str, asyncio.TimerHandle] = {}
        # Signals handed out, by kind: tests and benchmarks read them to see who woke whom.
        self.handed = {"ready": 0, "probe": 0, "passed": 0, "dropped": 0}
        self.sleeping = 0  # waiters blocked in wait() with no signal handed yet (so no claim running or due)

    def bind(self, loop: asyncio.AbstractEventLoop, db: Database | None = None) -> None:
        """Attach to the server's loop; with `db`, the store's announcements wake this process's waiters."""
        self._loop = loop
        if db is not None:
            self._clock = db.clock
            db.ready_listeners.append(self.announced)

    # --- thread-safe entry points -------------------------------------------------------------------------

    def notify(self, queues: Iterable[str], at: datetime | None = None) -> None:
        """One job ready per entry of `queues` (a queue named twice means two jobs), now or at `at`."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        names = list(queues)
        if not names:
            return
        if asyncio._get_running_loop() is loop:
            # On the loop itself (SQLite's inline store calls, PostgreSQL's on-loop ones): the waiters are handed
            # their signals now, so a woken dequeue may claim before the caller's own reply is built.
            self._ready(names, at)
        else:
            loop.call_soon_threadsafe(self._ready, names, at)

    def announced(self, note: ReadyAnnouncement) -> None:
        self.notify([note.queue] * note.count, note.at)

    def relay(self, payload: str) -> None:
        """A NOTIFY payload from the database; ignored when this process sent it (its waiters already know)."""
        note = parse_ready_payload(payload)
        if note is not None:
            self.announced(note)

    def probe_all(self) -> None:
        """Re-check every queue with waiters now (after announcements may have been lost)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: [self._hand(Signal(q, probe=True)) for q in list(self._waiting)])

    # --- on the loop ----------------------------------------------------------------------------------------

    def park(self, queues: Iterable[str]) -> Waiter:
        loop = asyncio.get_running_loop()
        waiter = Waiter(tuple(queues), loop.create_future())
        self.repark(waiter)
        return waiter

    def repark(self, waiter: Waiter) -> None:
        """Make the waiter eligible for signals again (at the back of each of its queues)."""
        if waiter.parked:
            return
        waiter.parked = True
        for q in waiter.queues:
            waiting = self._waiting.get(q)
            if waiting is None:
                waiting = self._waiting[q] = {}
                self._arm_probe(q)
            waiting[waiter] = None

    def _unlist(self, waiter: Waiter) -> None:
        if not waiter.parked:
            return
        waiter.parked = False
        for q in waiter.queues:
            waiting = self._waiting.get(q)
            if waiting is not None:
                waiting.pop(waiter, None)
                if not waiting:
                    del self._waiting[q]

    def leave(self, waiter: Waiter) -> None:
        """The waiter is done; a signal it holds unused goes to the next waiter."""
        self._unlist(waiter)
        signal = waiter.take()
        if signal is not None:
            self.pass_on(signal)

    def pass_on(self, signal: Signal) -> None:
        self.handed["passed"] += 1
        self._hand(signal)

    async def wait(self, waiter: Waiter, timeout: float) -> Signal | None:
        """Wait for a signal at most `timeout` seconds; None when none came. One timer per waiter, no polling."""
        if waiter.future.done():
            return waiter.take()
        if timeout <= 0:
            return None
        self.repark(waiter)
        fut = waiter.future
        handle = fut.get_loop().call_later(timeout, self._expire, waiter, fut)
        self._sleep(waiter, True)
        try:
            await fut
        finally:
            self._sleep(waiter, False)
            handle.cancel()
        return waiter.take()

    def _sleep(self, waiter: Waiter, sleeping: bool) -> None:
        if waiter.sleeping != sleeping:
            waiter.sleeping = sleeping
            self.sleeping += 1 if sleeping else -1

    def _expire(self, waiter: Waiter, fut: asyncio.Future[Signal | None]) -> None:
        if not fut.done():
            self._sleep(waiter, False)
            self._unlist(waiter)
            fut.set_result(None)

    def _ready(self, queues: list[str], at: datetime | None) -> None:
        now = self._clock()
        for q in queues:
            if at is None or at <= now:
                self.handed["ready"] += 1
                self._hand(Signal(q))
            else:
                heapq.heappush(self._due.setdefault(q, []), at)
                self._arm_due(q, now)

    def _hand(self, signal: Signal) -> bool:
        waiting = self._waiting.get(signal.queue)
        if not waiting:
            # Nobody waits: the job stays ready in the store, and the next dequeue's first claim takes it.
            self.handed["dropped"] += 1
            return False
        waiter = next(iter(waiting))
        self._sleep(waiter, False)
        self._unlist(waiter)
        waiter.future.set_result(signal)
        return True

    def _arm_due(self, queue: str, now: datetime) -> None:
        heap = self._due[queue]
        timer = self._due_timers.pop(queue, None)
        if timer is not None:
            timer.cancel()
        # A millisecond late rather than early: the claim compares the store's clock with the job's process_after.
        delay = max((heap[0] - now).total_seconds(), 0.0) + 0.001
        self._due_timers[queue] = self._call_later(delay, self._due_fire, queue)

    def _due_fire(self, queue: str) -> None:
        self._due_timers.pop(queue, None)
        heap = self._due.get(queue, [])
        now = self._clock()
        while heap and heap[0] <= now:
            heapq.heappop(heap)
            self.handed["ready"] += 1
            self._hand(Signal(queue))
        if heap:
            self._arm_due(queue, now)
        else:
            self._due.pop(queue, None)

    def _arm_probe(self, queue: str) -> None:
        if queue not in self._probe_timers:
            self._probe_timers[queue] = self._call_later(self.recheck_seconds, self._probe_fire, queue)

    def _probe_fire(self, queue: str) -> None:
        del self._probe_timers[queue]
        if self._waiting.get(queue):
            self.handed["probe"] += 1
            self._hand(Signal(queue, probe=True))
            self._arm_probe(queue)

    def _call_later(self, delay: float, fn: Callable[[str], None], queue: str) -> asyncio.TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        return loop.call_later(delay, fn, queue)

    def quiet(self, queues: Iterable[str]) -> bool:
        """Whether each queue has a waiter asleep with no signal: then no job announced in them is ready."""
        return all(any(w.sleeping for w in self._waiting.get(q, ())) for q in queues)

    def waiting(self, queue: str) -> int:
        return len(self._waiting.get(queue, ()))


class DatabaseListener:
    """Wakes this process's waiters when another server process on the same PostgreSQL database announces jobs.

    A daemon thread holds one LISTEN connection; it reconnects with jittered backoff if the database goes away,
    and after reconnecting re-checks every queue with waiters (announcements sent meanwhile are lost).
    """

    def __init__(self, dsn: str, channel: str, notifier: QueueNotifier) -> None:
        self.dsn = dsn
        self.channel = channel
        self.notifier = notifier
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._down = False
        self._connected_before = False
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
                if self._connected_before:
                    self.notifier.probe_all()
                self._connected_before = True
                while not self._stop.is_set():
                    # The timeout bounds how long stop() waits for this thread.
                    for note in conn.notifies(timeout=0.5):
                        self.notifier.relay(note.payload)
        except psycopg.Error as exc:
            if not self.listening.is_set():
                raise
            self._lost(exc)
