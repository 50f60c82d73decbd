"""Store figures, in-process: claim cost against the backlog, and queue-stats cost against the table size.

Claim: a burst of --backlog jobs lands in one queue and is analyzed; then --claims claims run against one queue
and against two (the second empty), and the median of the first and the last 100 is printed: a claim that
walked the claimed jobs or the table would grow from first to last. Completions: --claims claimed jobs are
completed by 1 and by 8 threads, with the finished-job counters' triggers (migration 0003) in place and with
them dropped, to show what the counters cost. Stats: QueueStore.stats() (what /api/v1/queues, /metrics and
the dashboard read) with 10,000, 100,000 and 1,000,000 finished jobs (and 1,000 queued) in the table.

Run: .venv/bin/python bench/bench_store.py [--backends sqlite,postgresql] [--backlog N] [--claims N]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.db.models import jobs  # noqa: E402

# The counters' layout (migration 0003): rows per (queue, state), and the final states.
SHARDS = 8
FINAL = "('completed', 'failed', 'canceled')"
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
        # On PostgreSQL the counters' per-row trigger makes a bulk insert of finished jobs crawl (every row
        # updates one of a few counter rows, inside one transaction); it is switched off for the copy, and the
        # counters are then recounted from the table as migration 0003 first filled them.
        bulk = conn.dialect.name == "postgresql" and state is not None
        if bulk:
            conn.execute(text("ALTER TABLE jobs DISABLE TRIGGER jobs_count_finished_insert"))
        conn.execute(
            text(f"INSERT INTO jobs ({cols}{extra_col}) SELECT {cols}{extra_val} FROM jobs, {series} WHERE jobs.id = 1")
        )
        if bulk:
            conn.execute(text("ALTER TABLE jobs ENABLE TRIGGER jobs_count_finished_insert"))
            conn.execute(text("DELETE FROM finished_counts"))
            conn.execute(
                text(
                    f"INSERT INTO finished_counts (queue, state, shard, n) SELECT queue, state, id % {SHARDS}, "
                    f"count(*) FROM jobs WHERE state IN {FINAL} GROUP BY queue, state, id % {SHARDS}"
                )
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


def drop_counter_triggers(store: Store) -> None:
    with store.db.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        for name in ("insert", "update", "delete") if postgres else ("insert", "leave", "enter", "delete"):
            conn.execute(text(f"DROP TRIGGER jobs_count_finished_{name}" + (" ON jobs" if postgres else "")))


def completions(store: Store, n: int, threads: int) -> float:
    """Completions per second of n claimed jobs, spread over `threads` threads."""
    claimed = [store.jobs.claim(["a"], "bench") for _ in range(n)]
    ids = [j.id for j in claimed if j is not None]
    chunks = [ids[i::threads] for i in range(threads)]

    def run(chunk: list[int]) -> None:
        for job_id in chunk:
            store.transitions.mark_complete("a", job_id, "bench")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, chunks))
    return len(ids) / (time.perf_counter() - start)


def timed(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_counts(store: Store) -> None:
    """The stats are the exact counts of the table, or the figures mean nothing."""
    with store.db.read() as conn:
        counted = {
            (q, st): n
            for q, st, n in conn.execute(
                select(jobs.c.queue, jobs.c.state, func.count()).group_by(jobs.c.queue, jobs.c.state)
            )
        }
    for q in store.queues.stats():
        for st in ("queued", "processing", "errored", "completed", "failed", "canceled"):
            assert getattr(q, st) == counted.get((q.name, st), 0), (q.name, st, getattr(q, st), counted)


def count_every_job(store: Store) -> None:
    """The per-state counts as stats() made them before the counters: a GROUP BY over the whole table."""
    with store.db.read() as conn:
        conn.execute(select(jobs.c.queue, jobs.c.state, func.count()).group_by(jobs.c.queue, jobs.c.state)).all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--backlog", type=int, default=20_000)
    ap.add_argument("--claims", type=int, default=3_000)
    ap.add_argument(
        "--parts", default="claims,completions,stats", help="which figures, comma-separated (default: all three)"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-store-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cluster = None
    try:
        for backend in args.backends.split(","):
            if backend == "postgresql":
                cluster = cluster or start_cluster(tmp / "pg")
            pg = cluster if backend == "postgresql" else None
            parts = args.parts.split(",")
            for queues in (["a"], ["a", "b"]) if "claims" in parts else ():
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
            for counters in (True, False) if "completions" in parts else ():
                for threads in (1, 8):
                    store = open_store(backend, tmp, pg, f"complete-{counters}-{threads}")
                    try:
                        if not counters:
                            drop_counter_triggers(store)
                        copy_first_job(store, args.claims - 1)
                        rate = completions(store, args.claims, threads)
                    finally:
                        store.close()
                    print(
                        f"{backend:<11} completions, {threads} thread(s), counters {'on ' if counters else 'off'}: "
                        f"{rate:,.0f}/s",
                        flush=True,
                    )
            if "stats" not in parts:
                continue
            store = open_store(backend, tmp, pg, "stats")
            try:
                copy_first_job(store, 999)  # 1,000 queued jobs: the active states are counted, not summed
                total = 1000
                for finished in (10_000, 100_000, 1_000_000):
                    copy_first_job(store, finished + 1000 - total, state="completed")
                    total = finished + 1000
                    size = finished
                    now, before = timed(store.queues.stats), timed(functools.partial(count_every_job, store))
                    check_counts(store)
                    print(
                        f"{backend:<11} queue stats, {size:>9,} finished + 1,000 queued jobs: "
                        f"median {now * 1000:.2f} ms (counting every job, as before migration 0003: "
                        f"{before * 1000:.1f} ms)",
                        flush=True,
                    )
            finally:
                store.close()
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
