"""Executors as the server knows them: heartbeats record each one and refresh its jobs' heartbeats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update

from fleet.db.dialect import upsert
from fleet.db.models import executors, jobs
from fleet.states import JobState
from fleet.store.database import Database
from fleet.store.queues import QueueStore


class ExecutorStore:
    def __init__(self, db: Database, queues: QueueStore) -> None:
        self.db = db
        self.queues = queues

    def heartbeat(
        self, queue_names: list[str], executor: dict[str, Any], job_ids: list[int]
    ) -> tuple[list[int], list[int]]:
        """Record the executor and refresh its jobs' heartbeats.

        Returns (known, cancel): the ids of those jobs the server still assigns to this executor, and the ids of
        those the executor should stop because someone canceled them.
        """
        now = self.db.clock()
        name = executor["name"]
        with self.db.write() as conn:
            self.queues.require_cached(conn, queue_names)
            values = {**executor, "queue_names": sorted(queue_names), "last_seen_at": now}
            upsert(conn, executors, {**values, "first_seen_at": now}, key="name", update=values)
            if not job_ids:
                return [], []
            rows = conn.execute(
                select(jobs.c.id, jobs.c.cancel_requested).where(
                    jobs.c.id.in_(job_ids),
                    jobs.c.queue.in_(queue_names),
                    jobs.c.state == JobState.PROCESSING,
                    jobs.c.executor_name == name,
                )
            ).all()
            known = [r.id for r in rows]
            if known:
                conn.execute(update(jobs).where(jobs.c.id.in_(known)).values(last_heartbeat_at=now))
        return sorted(known), sorted(r.id for r in rows if r.cancel_requested)

    def list_executors(self) -> list[Row[Any]]:
        with self.db.read() as conn:
            return list(conn.execute(select(executors).order_by(executors.c.last_seen_at.desc())))
