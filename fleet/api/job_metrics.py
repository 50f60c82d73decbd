"""Job activity series, read from the job table at scrape time (docs/operations.md, "Metrics").

- `fleet_job_queue_wait_seconds{queue}`: histogram of the time from queued (or requeued) to started;
- `fleet_job_outcomes_total{queue,state}`: attempts that ended completed, errored, failed or canceled;
- `fleet_job_resets_total{queue}`: jobs the resetter requeued because their executor stopped heartbeating.

They are derived from the rows that changed since the previous scrape (with a look-back that covers slow
commits), not counted where the change happens: every server process then reports the same events, whichever
process made the change, so aggregate them with `max`, not `sum`, across server processes. Counting starts when
the process starts. The price: a row shows only its current attempt, so an attempt that errors and is dequeued
again between two scrapes is counted as neither a start nor an errored outcome (its job's later ones are).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Hashable, Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, or_, select

from fleet.db.models import jobs
from fleet.states import JobState
from fleet.store import Store

WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, math.inf)
LOOKBACK = timedelta(seconds=120)
OUTCOMES = (JobState.COMPLETED, JobState.ERRORED, JobState.FAILED, JobState.CANCELED)
_STARTED = (JobState.PROCESSING, *OUTCOMES)


class JobActivity(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.born = store.db.clock()
        self.mark = self.born
        self.lock = threading.Lock()
        self.seen: dict[Hashable, datetime] = {}
        self.waits: dict[str, list[float]] = {}  # queue -> per-bucket counts (not cumulative), then the sum
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.resets: Counter[str] = Counter()

    def _once(self, key: Hashable, at: datetime, since: datetime) -> bool:
        """True the first time an event is seen; events from before the process started do not count."""
        if at < since or key in self.seen:
            return False
        self.seen[key] = at
        return True

    def _rows(self, since: datetime) -> list[Any]:
        c = jobs.c
        stmt = select(c.id, c.queue, c.state, c.attempt, c.queued_at, c.started_at, c.finished_at, c.num_resets).where(
            or_(
                and_(c.state == JobState.PROCESSING.value, c.started_at >= since),
                c.finished_at >= since,
                and_(c.state == JobState.QUEUED.value, c.num_resets > 0, c.queued_at >= since),
            )
        )
        with self.store.db.read() as conn:
            return list(conn.execute(stmt))

    def scan(self) -> None:
        now = self.store.db.clock()
        since = max(self.born, self.mark - LOOKBACK)
        for r in self._rows(since):
            started = r.started_at is not None and r.state in _STARTED
            if started and self._once(("s", r.id, r.attempt), r.started_at, since):
                self._observe_wait(r.queue, (r.started_at - r.queued_at).total_seconds())
            ended = r.finished_at is not None and r.state in OUTCOMES
            if ended and self._once(("o", r.id, r.attempt, r.state, r.finished_at), r.finished_at, since):
                self.outcomes[(r.queue, str(r.state))] += 1
            if r.num_resets > 0 and self._once(("r", r.id, r.num_resets), r.queued_at, since):
                self.resets[r.queue] += 1
        self.mark = now
        for key in [k for k, at in self.seen.items() if at < since]:
            del self.seen[key]

    def _observe_wait(self, queue: str, seconds: float) -> None:
        counts = self.waits.setdefault(queue, [0.0] * (len(WAIT_BUCKETS) + 1))
        index = next(i for i, bound in enumerate(WAIT_BUCKETS) if seconds <= bound)
        counts[index] += 1
        counts[-1] += max(seconds, 0.0)

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            self.scan()
            # Every queue has its series from the start (at 0), so rate() and alerts see them before any event.
            for queue in self.store.queues.names():
                self.waits.setdefault(queue, [0.0] * (len(WAIT_BUCKETS) + 1))
                self.resets.setdefault(queue, 0)
                for state in OUTCOMES:
                    self.outcomes.setdefault((queue, state.value), 0)
            wait = HistogramMetricFamily(
                "fleet_job_queue_wait_seconds", "Time jobs waited from queued to started, per queue.", labels=["queue"]
            )
            for queue in sorted(self.waits):
                counts, running = self.waits[queue], 0.0
                buckets = []
                for bound, n in zip(WAIT_BUCKETS, counts, strict=False):
                    running += n
                    buckets.append(("+Inf" if math.isinf(bound) else f"{bound:g}", running))
                wait.add_metric([queue], buckets, counts[-1])
            outcomes = CounterMetricFamily(
                "fleet_job_outcomes", "Job attempts that ended, per queue and state.", labels=["queue", "state"]
            )
            for (queue, outcome), n in sorted(self.outcomes.items()):
                outcomes.add_metric([queue, outcome], n)
            resets = CounterMetricFamily(
                "fleet_job_resets", "Jobs requeued because their executor stopped heartbeating.", labels=["queue"]
            )
            for queue, n in sorted(self.resets.items()):
                resets.add_metric([queue], n)
        yield wait
        yield outcomes
        yield resets
