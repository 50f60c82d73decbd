"""executors.exit_reason: set by an executor's last heartbeat when it exits cleanly (drained), so the dashboard
can tell it from one that stopped heartbeating (crashed).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("executors", sa.Column("exit_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("executors", "exit_reason")
