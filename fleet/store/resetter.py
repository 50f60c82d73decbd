"""The resetter: jobs whose executor stopped heartbeating go back to the queue, or fail after too many resets.

A missing heartbeat only means the executor stopped when the server could have received it: while this server was
not running, or its database was unreachable, live executors could not heartbeat either. So no job is reset for
stalling until the stall time has passed since the server started (hold()) and since the database was last seen
unreachable (mark_unreachable(), then the first round that reaches it again).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from fleet.db.dialect import announce_ready, serialize_multi_row_writes
from fleet.db.models import jobs
from fleet.states import JobState
from fleet.store.database import Database
from fleet.store.lifecycle import Event, after_stall, state_is


@dataclass
class ResetResult:
    requeued: list[tuple[int, str]] = field(default_factory=list)  # (job id, queue)
    failed: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)
    recovered: bool = False  # this round found the database reachable again after an outage
    outage_seconds: float = 0.0  # how long that outage lasted, from the first failed call


class Resetter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._not_before: datetime | None = None
        self._unreachable = False
        self._outage_began = 0.0

    def hold(self) -> None:
        """Reset nothing for the next stall time: heartbeats may not have been possible until now."""
        with self._lock:
            self._not_before = self.db.clock() + timedelta(seconds=self.db.config.stalled_job_seconds)

    def mark_unreachable(self) -> bool:
        """The database failed a call; True when this starts an outage (the first failure seen)."""
        with self._lock:
            started, self._unreachable = not self._unreachable, True
            if started:
                self._outage_began = time.monotonic()
        return started

    @property
    def unreachable(self) -> bool:
        return self._unreachable

    def reset_stalled(self) -> ResetResult:
        try:
            return self._reset_stalled()
        except SQLAlchemyError:
            self.mark_unreachable()
            raise

    def _reset_stalled(self) -> ResetResult:
        if self._unreachable:
            with self.db.read() as conn:  # raises while the outage lasts
                conn.execute(select(1))
            # Pooled connections from before the outage are dead (the single-statement pools do not ping):
            # start every pool afresh rather than fail the next calls on them.
            self.db.dispose()
            with self._lock:
                self._unreachable = False
            self.hold()
            return ResetResult(recovered=True, outage_seconds=time.monotonic() - self._outage_began)
        now = self.db.clock()
        if self._not_before is not None and now < self._not_before:
            return ResetResult()
        cutoff = now - timedelta(seconds=self.db.config.stalled_job_seconds)
        result = ResetResult()
        with self.db.write() as conn:
            serialize_multi_row_writes(conn)
            stmt = select(jobs.c.id, jobs.c.queue, jobs.c.num_resets, jobs.c.cancel_requested).where(
                state_is(jobs.c.state, Event.STALL), jobs.c.last_heartbeat_at < cutoff
            )
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            for row in conn.execute(stmt).all():
                state, message = after_stall(row.cancel_requested, row.num_resets, self.db.config.max_resets)
                if state != JobState.QUEUED:
                    values = {"state": state, "failure_message": message, "finished_at": now, "token_hash": None}
                    (result.canceled if state == JobState.CANCELED else result.failed).append(row.id)
                else:
                    values = {
                        "state": JobState.QUEUED,
                        "num_resets": row.num_resets + 1,
                        "queued_at": now,
                        "token_hash": None,
                        "started_at": None,
                    }
                    result.requeued.append((row.id, row.queue))
                conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values))
            announce_ready(conn, (q for _, q in result.requeued))
        return result
