"""Store figures, in-process: claim cost against the backlog, and queue-stats cost against the table size.

Claim: a burst of --backlog jobs lands in one queue and is analyzed; then --claims claims run against one queue
and against two (the second empty), and the median of the first and the last 100 is printed: a claim that
walked the claimed jobs or the table would grow from first to last. Stats: QueueStore.stats() (what
/api/v1/queues, /metrics and the dashboard read) with 100,000 and 1,000,000 finished jobs in the table.

Run: .venv/bin/python bench/bench_store.py [--backends sqlite,postgresql] [--backlog N] [--claims N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.schemas import JobSubmission  # noqa: E402
from fleet.store import Store  # noqa: E402
from tests.support.postgres import PostgresCluster, start_cluster  # noqa: E402

SPEC = {"queue": "a", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}


def copy_first_job(store: Store, copies: int, state: str | None = None) -> None:
    """Grow the jobs table fast: copies of job 1 (optionally in another state), in one statement; then analyze."""
    with store.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            columns = conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'")
            ).scalars()
            series = f"generate_series(1, {copies})"
        else:
            columns = conn.execute(text("SELECT name FROM pragma_table_info('jobs')")).scalars()
            conn.execute(
                text(
                    "CREATE TEMP TABLE s AS WITH RECURSIVE n(i) AS "
                    f"(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) SELECT i FROM n"
                )
            )
            series = "s"
        keep = [c for c in columns if c not in ("id", "token_hash") and (state is None or c != "state")]
        cols = ", ".join(keep)
        extra_col, extra_val = (", state", f", '{state}'") if state else ("", "")
        conn.execute(
            text(f"INSERT INTO jobs ({cols}{extra_col}) SELECT {cols}{extra_val} FROM jobs, {series} WHERE jobs.id = 1")
        )
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TABLE s"))
        if conn.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
    if store.db.engine.dialect.name == "postgresql":
        # What autovacuum would have done by then; it also lets counts use index-only scans.
        with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))


def open_store(backend: str, tmp: Path, cluster: PostgresCluster | None, name: str) -> Store:
    url = cluster.create_database() if cluster else f"sqlite:///{tmp}/{name}.db"
    store = Store.open(url)
    store.queues.ensure(["a", "b"])
    store.jobs.submit(JobSubmission(**SPEC))
    return store


def claims(store: Store, queues: list[str], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert store.jobs.claim(queues, "bench") is not None
        times.append(time.perf_counter() - start)
    return statistics.median(times[:100]), statistics.median(times[-100:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--backlog", type=int, default=20_000)
    ap.add_argument("--claims", type=int, default=3_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-store-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cluster = None
    try:
        for backend in args.backends.split(","):
            if backend == "postgresql":
                cluster = cluster or start_cluster(tmp / "pg")
            pg = cluster if backend == "postgresql" else None
            for queues in (["a"], ["a", "b"]):
                store = open_store(backend, tmp, pg, f"claim-{len(queues)}")
                try:
                    copy_first_job(store, args.backlog - 1)
                    first, last = claims(store, queues, args.claims)
                finally:
                    store.close()
                print(
                    f"{backend:<11} claim, {len(queues)} queue(s), backlog {args.backlog}: "
                    f"first 100 median {first * 1000:.2f} ms, last 100 median {last * 1000:.2f} ms",
                    flush=True,
                )
            store = open_store(backend, tmp, pg, "stats")
            try:
                total = 1
                for size in (100_000, 1_000_000):
                    copy_first_job(store, size - total, state="completed")
                    total = size
                    times = []
                    for _ in range(5):
                        start = time.perf_counter()
                        store.queues.stats()
                        times.append(time.perf_counter() - start)
                    print(
                        f"{backend:<11} queue stats, {size:>9,} jobs: median {statistics.median(times) * 1000:.1f} ms"
                    )
            finally:
                store.close()
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
