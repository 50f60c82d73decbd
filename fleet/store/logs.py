"""Execution log entries: one row per command an executor ran, appended and updated while it runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from fleet.db.models import execution_log_entries as entries
from fleet.store.database import Database
from fleet.store.errors import NotFound
from fleet.store.transitions import owned_job

TRUNCATION_MARKER = "\n[... output truncated by the fleet server: {dropped} bytes over the {limit} byte limit ...]\n"


def cap_output(out: str, limit: int) -> str:
    data = out.encode()
    if len(data) <= limit:
        return out
    kept = data[:limit].decode(errors="ignore")
    return kept + TRUNCATION_MARKER.format(dropped=len(data) - limit, limit=limit)


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        entry: dict[str, Any],
        attempt: int | None = None,
    ) -> int:
        with self.db.write() as conn:
            job = owned_job(conn, queue, job_id, executor_name, attempt, lock=False)
            return int(
                conn.execute(
                    entries.insert().values(job_id=job_id, attempt=job.attempt, **self._values(entry))
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def update(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        entry_id: int,
        entry: dict[str, Any],
        attempt: int | None = None,
    ) -> None:
        with self.db.write() as conn:
            job = owned_job(conn, queue, job_id, executor_name, attempt, lock=False)
            result = conn.execute(
                update(entries)
                .where(entries.c.id == entry_id, entries.c.job_id == job_id, entries.c.attempt == job.attempt)
                .values(**self._values(entry))
            )
            if result.rowcount == 0:
                raise NotFound(f"log entry {entry_id} does not belong to the current attempt of job {job_id}")

    def _values(self, entry: dict[str, Any]) -> dict[str, Any]:
        start: datetime = entry["startTime"]
        return {
            "key": entry["key"],
            "command": entry.get("command") or [],
            "start_time": start,
            "exit_code": entry.get("exitCode"),
            "out": cap_output(entry.get("out") or "", self.db.config.max_log_entry_bytes),
            "duration_ms": entry.get("durationMs"),
        }

    def for_job(self, job_id: int) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(entries).where(entries.c.job_id == job_id).order_by(entries.c.id)).all()
        return [
            {
                "id": r.id,
                "attempt": r.attempt,
                "key": r.key,
                "command": r.command,
                "startTime": r.start_time.isoformat(),
                "exitCode": r.exit_code,
                "durationMs": r.duration_ms,
                "out": r.out,
            }
            for r in rows
        ]
