"""The tables of the job store (SQLAlchemy Core). Alembic migrations in fleet/db/migrations create them."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

from fleet.db.dialect import UTCDateTime

metadata = MetaData()

queues = Table(
    "queues",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("max_retries", Integer, nullable=False),
    Column("retry_delay_seconds", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

repositories = Table(
    "repositories",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("url", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("repository_name", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("process_after", UTCDateTime, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_heartbeat_at", UTCDateTime, nullable=True),
    Column("executor_name", String(255), nullable=True),
    # Bumped at every dequeue; log entries and the job token belong to one attempt.
    Column("attempt", Integer, nullable=False, default=0),
    # sha256 of the current attempt's job token; NULL when no attempt is running (revoked).
    Column("token_hash", String(64), nullable=True, unique=True),
    Column("num_resets", Integer, nullable=False, default=0),
    Column("num_failures", Integer, nullable=False, default=0),
    Column("failure_message", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # Serves the claim: per (queue, state) the oldest id first, so handing out a job never sorts the backlog.
    Index("ix_jobs_claim", "queue", "state", "id"),
    Index("ix_jobs_state_heartbeat", "state", "last_heartbeat_at"),
    # Serves retention: the oldest finished jobs first, without reading the jobs still in the queue.
    Index("ix_jobs_finished_at", "finished_at"),
)

# Per queue and final state, the number of finished jobs in `jobs`, spread over a few rows per pair (by job id) so
# concurrent completions do not wait on one row. Kept by triggers (migration 0003): never write it from code.
finished_counts = Table(
    "finished_counts",
    metadata,
    Column("queue", String(64), primary_key=True),
    Column("state", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

execution_log_entries = Table(
    "execution_log_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("key", String(255), nullable=False),
    Column("command", JSON, nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("out", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=True),
    Index("ix_log_entries_job", "job_id", "id"),
)

executors = Table(
    "executors",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("queue_names", JSON, nullable=False),
    Column("os", String(64), nullable=False, default=""),
    Column("architecture", String(64), nullable=False, default=""),
    Column("docker_version", String(64), nullable=False, default=""),
    Column("executor_version", String(64), nullable=False, default=""),
    Column("git_version", String(64), nullable=False, default=""),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("prometheus_metrics", Text, nullable=False, default=""),
    # Set by the executor's last heartbeat when it exits cleanly ("drained"); NULL while it runs or if it crashed.
    Column("exit_reason", String(64), nullable=True),
)
