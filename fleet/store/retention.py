"""Retention: finished jobs older than FLEET_JOB_RETENTION_DAYS are deleted, with their log entries.

Without it the jobs table only grows, and what reads all of it grows along (the per-state counts of
/api/v1/queues, /metrics and the dashboard). Deletion runs in small batches, each its own transaction, so it
never holds locks for long next to the protocol's writes.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from fleet.db.dialect import serialize_multi_row_writes
from fleet.db.models import execution_log_entries, jobs
from fleet.store.database import Database
from fleet.store.lifecycle import Event, state_is

BATCH = 500
# Per call: a backlog of expired jobs (retention just switched on) drains over several resetter rounds.
MAX_BATCHES = 20


class Retention:
    def __init__(self, db: Database) -> None:
        self.db = db

    def delete_expired(self) -> int:
        """Delete finished jobs past the retention period; returns how many. A no-op when retention is off."""
        keep = self.db.config.job_retention_days
        if keep <= 0:
            return 0
        cutoff = self.db.clock() - timedelta(days=keep)
        deleted = 0
        for _ in range(MAX_BATCHES):
            with self.db.write() as conn:
                serialize_multi_row_writes(conn)
                ids = list(
                    conn.execute(
                        select(jobs.c.id)
                        .where(jobs.c.finished_at < cutoff, state_is(jobs.c.state, Event.EXPIRE))
                        .order_by(jobs.c.finished_at)
                        .limit(BATCH)
                    ).scalars()
                )
                if not ids:
                    break
                conn.execute(delete(execution_log_entries).where(execution_log_entries.c.job_id.in_(ids)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < BATCH:
                break
        return deleted
