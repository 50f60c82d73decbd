"""Initial schema: queues, repositories, jobs, execution log entries, executors.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from fleet.db.dialect import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("retry_delay_seconds", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "repositories",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("repository_name", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("queued_at", UTCDateTime, nullable=False),
        sa.Column("process_after", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("last_heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("executor_name", sa.String(255), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("num_resets", sa.Integer, nullable=False),
        sa.Column("num_failures", sa.Integer, nullable=False),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_index("ix_jobs_claim", "jobs", ["queue", "state", "id"])
    op.create_index("ix_jobs_state_heartbeat", "jobs", ["state", "last_heartbeat_at"])
    op.create_table(
        "execution_log_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("command", sa.JSON, nullable=False),
        sa.Column("start_time", UTCDateTime, nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("out", sa.Text, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=True),
    )
    op.create_index("ix_log_entries_job", "execution_log_entries", ["job_id", "id"])
    op.create_table(
        "executors",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("queue_names", sa.JSON, nullable=False),
        sa.Column("os", sa.String(64), nullable=False),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("docker_version", sa.String(64), nullable=False),
        sa.Column("executor_version", sa.String(64), nullable=False),
        sa.Column("git_version", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("prometheus_metrics", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("executors", "execution_log_entries", "jobs", "repositories", "queues"):
        op.drop_table(table)
