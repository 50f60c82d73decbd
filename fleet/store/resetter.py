"""The resetter: jobs whose executor stopped heartbeating go back to the queue, or fail after too many resets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update

from fleet.db.dialect import announce_ready
from fleet.db.models import jobs
from fleet.states import RESET_FAILURE_MESSAGE, JobState
from fleet.store.database import Database


@dataclass
class ResetResult:
    requeued: list[tuple[int, str]] = field(default_factory=list)  # (job id, queue)
    failed: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)


class Resetter:
    def __init__(self, db: Database) -> None:
        self.db = db

    def reset_stalled(self) -> ResetResult:
        now = self.db.clock()
        cutoff = now - timedelta(seconds=self.db.config.stalled_job_seconds)
        result = ResetResult()
        with self.db.write() as conn:
            stmt = select(jobs.c.id, jobs.c.queue, jobs.c.num_resets, jobs.c.cancel_requested).where(
                jobs.c.state == JobState.PROCESSING, jobs.c.last_heartbeat_at < cutoff
            )
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            for row in conn.execute(stmt).all():
                done = {"finished_at": now, "token_hash": None}
                if row.cancel_requested:
                    values = {"state": JobState.CANCELED, "failure_message": "job was canceled", **done}
                    result.canceled.append(row.id)
                elif row.num_resets >= self.db.config.max_resets:
                    values = {"state": JobState.FAILED, "failure_message": RESET_FAILURE_MESSAGE, **done}
                    result.failed.append(row.id)
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
