"""Execution log entries: one row per command an executor ran, appended and updated while it runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Integer, Row, Update, bindparam, select, update

from fleet.db.models import execution_log_entries as entries
from fleet.db.models import jobs
from fleet.store.database import Database
from fleet.store.tokens import Writer, owned_where, refusal

TRUNCATION_MARKER = "\n[... output truncated by the fleet server: {dropped} bytes over the {limit} byte limit ...]\n"


def cap_output(out: str, limit: int) -> str:
    data = out.encode()
    if len(data) <= limit:
        return out
    kept = data[:limit].decode(errors="ignore")
    return kept + TRUNCATION_MARKER.format(dropped=len(data) - limit, limit=limit)


def _add_statement(by_token: bool) -> Insert:
    # INSERT ... SELECT from the owned job: the ownership check and the write are one statement.
    owner = select(
        jobs.c.id,
        jobs.c.attempt,
        *(bindparam(f"v_{name}", type_=entries.c[name].type) for name in _ENTRY_COLUMNS),
    ).where(*owned_where(by_token))
    return entries.insert().from_select(["job_id", "attempt", *_ENTRY_COLUMNS], owner).returning(entries.c.id)


def _update_statement(by_token: bool) -> Update:
    current_attempt = select(jobs.c.attempt).where(*owned_where(by_token)).scalar_subquery()
    return (
        update(entries)
        .where(
            entries.c.id == bindparam("v_entry_id", type_=Integer),
            entries.c.job_id == bindparam("w_job_id", type_=Integer),
            entries.c.attempt == current_attempt,
        )
        .values({name: bindparam(f"v_{name}", type_=entries.c[name].type) for name in _ENTRY_COLUMNS})
    )


_ENTRY_COLUMNS = ("key", "command", "start_time", "exit_code", "out", "duration_ms")
_ADD = {t: _add_statement(t) for t in (False, True)}
_UPDATE = {t: _update_statement(t) for t in (False, True)}


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        entry: dict[str, Any],
        token: str | None = None,
    ) -> int:
        writer = Writer(queue, job_id, executor_name, token)
        rows = self.db.run_one(_ADD[token is not None], {**writer.params(), **self._values(entry)})
        entry_id = rows[0][0] if rows else None
        if entry_id is None:
            with self.db.read_one() as conn:
                raise refusal(conn, writer)
        return int(entry_id)

    def update(
        self,
        queue: str,
        job_id: int,
        executor_name: str,
        entry_id: int,
        entry: dict[str, Any],
        token: str | None = None,
    ) -> None:
        writer = Writer(queue, job_id, executor_name, token)
        params = {**writer.params(), **self._values(entry), "v_entry_id": entry_id}
        with self.db.write_one() as conn:
            updated = conn.execute(_UPDATE[token is not None], params).rowcount
        if updated == 0:
            # Tell the refusals apart only now, off the hot path, in one read.
            entry_outside = f"log entry {entry_id} does not belong to the current attempt of job {job_id}"
            with self.db.read_one() as conn:
                raise refusal(conn, writer, entry_outside)

    def _values(self, entry: dict[str, Any]) -> dict[str, Any]:
        start: datetime = entry["startTime"]
        return {
            "v_key": entry["key"],
            "v_command": entry.get("command") or [],
            "v_start_time": start,
            "v_exit_code": entry.get("exitCode"),
            "v_out": cap_output(entry.get("out") or "", self.db.config.max_log_entry_bytes),
            "v_duration_ms": entry.get("durationMs"),
        }

    def for_job(self, job_id: int) -> list[Row[Any]]:
        with self.db.read() as conn:
            return list(conn.execute(select(entries).where(entries.c.job_id == job_id).order_by(entries.c.id)))
