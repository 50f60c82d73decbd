"""Fleet health derived for the dashboard, `GET /api/v1/executors` and /metrics (its JSON: fleet/api/views.py).

Executor health (docs/control-plane.md, "Executors"):
- `healthy`: a heartbeat within 3 heartbeat intervals;
- `late`: heartbeats missed, but seen within INACTIVE_AFTER_INTERVALS intervals: still counted as active;
- `drained`: its last heartbeat said it exits cleanly (job budget or active time used up, or a signal's drain);
- `crashed`: not seen for INACTIVE_AFTER_INTERVALS intervals without saying it exits.
Drained and crashed executors are inactive: the dashboard lists them apart, and they stop counting toward queues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fleet.api import views
from fleet.states import JobState
from fleet.store import Store

HEALTHY_WITHIN_INTERVALS = 3
INACTIVE_AFTER_INTERVALS = 20  # 100 s with the default 5 s heartbeat


class ExecutorHealth(StrEnum):
    HEALTHY = "healthy"
    LATE = "late"
    DRAINED = "drained"
    CRASHED = "crashed"


ACTIVE = (ExecutorHealth.HEALTHY, ExecutorHealth.LATE)


def health_of(last_seen: datetime, exit_reason: str | None, now: datetime, interval: float) -> ExecutorHealth:
    if exit_reason:
        return ExecutorHealth.DRAINED
    quiet = now - last_seen
    if quiet <= timedelta(seconds=HEALTHY_WITHIN_INTERVALS * interval):
        return ExecutorHealth.HEALTHY
    if quiet <= timedelta(seconds=INACTIVE_AFTER_INTERVALS * interval):
        return ExecutorHealth.LATE
    return ExecutorHealth.CRASHED


def executor_records(store: Store, heartbeat_interval: float) -> list[dict[str, Any]]:
    """Executors, most recently seen first, with their health and the jobs they hold now."""
    now = store.db.clock()
    running: dict[str, list[int]] = {}
    for job in store.jobs.list(state=JobState.PROCESSING, limit=1000):
        running.setdefault(job.executor_name or "", []).append(job.id)
    out = []
    for r in store.executors.list_executors():
        health = health_of(r.last_seen_at, r.exit_reason, now, heartbeat_interval)
        healthy, active = health is ExecutorHealth.HEALTHY, health in ACTIVE
        out.append(views.executor_view(r, now, health.value, healthy, active, sorted(running.get(r.name, []))))
    return out


def queue_records(store: Store, executors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queues as the API shows them, plus who serves each and, for work nobody serves, since when."""
    now = store.db.clock()
    out = []
    for q in store.queues.stats():
        serving = [e for e in executors if q.name in e["queues"] and e["active"]]
        unserved = None
        if not serving and q.queued + q.errored > 0:
            # Work has waited unserved since the later of: the oldest job arriving, the last executor leaving.
            seen = [datetime.fromisoformat(e["lastSeenAt"]) for e in executors if q.name in e["queues"]]
            since = max([*seen, q.oldest_queued_at] if q.oldest_queued_at else seen or [now])
            unserved = round(max((now - since).total_seconds(), 0.0), 1)
        out.append(views.served_queue_view(q, now, len(serving), unserved))
    return out
