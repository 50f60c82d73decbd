"""finished_counts: per queue and final state, how many finished jobs the jobs table holds, kept by triggers.

Queue statistics (/api/v1/queues, /metrics, every publisher round and Prometheus scrape) read these sums instead
of counting the finished jobs, which only grow. Triggers keep them in the statement that moves a job into or out
of a final state (or inserts or deletes one), so they are exact after any crash and cost the protocol no round
trip. Each (queue, state) is spread over SHARDS rows by job id, so concurrent completions on PostgreSQL do not
queue on one row lock. Claims never fire them (their WHEN clause skips non-final states).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SHARDS = 8
FINAL = "('completed', 'failed', 'canceled')"


def upgrade() -> None:
    op.create_table(
        "finished_counts",
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO finished_counts (queue, state, shard, n) "
        f"SELECT queue, state, id % {SHARDS}, count(*) FROM jobs WHERE state IN {FINAL} "
        f"GROUP BY queue, state, id % {SHARDS}"
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _postgresql_triggers() -> None:
    op.execute(f"""
        CREATE FUNCTION fleet_count_finished() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.state IN {FINAL} THEN
                UPDATE finished_counts SET n = n - 1
                WHERE queue = OLD.queue AND state = OLD.state AND shard = OLD.id % {SHARDS};
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.state IN {FINAL} THEN
                -- A plain UPDATE first: the row exists but for the first job of each (queue, state, shard), and
                -- an INSERT ... ON CONFLICT costs a speculative insertion every time.
                UPDATE finished_counts SET n = n + 1
                WHERE queue = NEW.queue AND state = NEW.state AND shard = NEW.id % {SHARDS};
                IF NOT FOUND THEN
                    INSERT INTO finished_counts (queue, state, shard, n)
                    VALUES (NEW.queue, NEW.state, NEW.id % {SHARDS}, 1)
                    ON CONFLICT (queue, state, shard) DO UPDATE SET n = finished_counts.n + 1;
                END IF;
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute(
        "CREATE TRIGGER jobs_count_finished_insert AFTER INSERT ON jobs FOR EACH ROW "
        f"WHEN (NEW.state IN {FINAL}) EXECUTE FUNCTION fleet_count_finished()"
    )
    op.execute(
        "CREATE TRIGGER jobs_count_finished_update AFTER UPDATE OF state ON jobs FOR EACH ROW "
        f"WHEN (OLD.state IS DISTINCT FROM NEW.state AND (OLD.state IN {FINAL} OR NEW.state IN {FINAL})) "
        "EXECUTE FUNCTION fleet_count_finished()"
    )
    op.execute(
        "CREATE TRIGGER jobs_count_finished_delete AFTER DELETE ON jobs FOR EACH ROW "
        f"WHEN (OLD.state IN {FINAL}) EXECUTE FUNCTION fleet_count_finished()"
    )


def _sqlite_triggers() -> None:
    def add(row: str) -> str:
        return (
            f"INSERT OR IGNORE INTO finished_counts (queue, state, shard, n) "
            f"VALUES ({row}.queue, {row}.state, {row}.id % {SHARDS}, 0); "
            f"UPDATE finished_counts SET n = n + 1 "
            f"WHERE queue = {row}.queue AND state = {row}.state AND shard = {row}.id % {SHARDS};"
        )

    remove = (
        "UPDATE finished_counts SET n = n - 1 "
        f"WHERE queue = OLD.queue AND state = OLD.state AND shard = OLD.id % {SHARDS};"
    )
    changed = "OLD.state IS NOT NEW.state"
    op.execute(
        "CREATE TRIGGER jobs_count_finished_insert AFTER INSERT ON jobs "
        f"WHEN NEW.state IN {FINAL} BEGIN {add('NEW')} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_count_finished_leave AFTER UPDATE OF state ON jobs "
        f"WHEN {changed} AND OLD.state IN {FINAL} BEGIN {remove} END"
    )
    op.execute(
        "CREATE TRIGGER jobs_count_finished_enter AFTER UPDATE OF state ON jobs "
        f"WHEN {changed} AND NEW.state IN {FINAL} BEGIN {add('NEW')} END"
    )
    op.execute(
        f"CREATE TRIGGER jobs_count_finished_delete AFTER DELETE ON jobs WHEN OLD.state IN {FINAL} BEGIN {remove} END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER jobs_count_finished_{name} ON jobs")
        op.execute("DROP FUNCTION fleet_count_finished()")
    else:
        for name in ("insert", "leave", "enter", "delete"):
            op.execute(f"DROP TRIGGER jobs_count_finished_{name}")
    op.drop_table("finished_counts")
