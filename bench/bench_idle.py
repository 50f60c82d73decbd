"""Idle fleet figures: what N parked executors cost one `fleet server`, and how fast a job reaches one of them.

For each backend, mode and N, a real `fleet server` (default settings, one process) gets N executor connections
from this process: in `long` mode each long-polls `dequeue?wait=10` and polls again when that ends, as the agent
does with its default EXECUTOR_QUEUE_LONG_POLL (the first waits are spread over 0-10 s, so the re-polls come
at the steady rate of N/10 a second, as from executors started at different times); in `plain` mode each
polls `dequeue` once a second as the seeds' executors do. Over an idle window it prints the server's CPU (share
of one core), SQL statements per second and per idle poll request, RSS and open fds (and their growth per
waiter), and on PostgreSQL the backend sessions open and opened; then pickup latency (submit -> a parked
executor holds the job) under that load. Statements are counted inside the server by a SQLAlchemy event
listener that a sitecustomize hook installs (only in these benchmark runs).

Every load loop is bounded in count and time; only loopback addresses are used.

Run: .venv/bin/python bench/bench_idle.py --quick        (1,000 executors, short windows)
     .venv/bin/python bench/bench_idle.py --counts 1000,10000 [--backends sqlite,postgresql] [--modes long,plain]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_protocol import RawHTTP  # noqa: E402

from tests.support.fleet_server import FleetServer, start_fleet_server  # noqa: E402
from tests.support.postgres import PostgresCluster, start_cluster  # noqa: E402

STEP = {"image": "busybox", "commands": ["true"]}
SITECUSTOMIZE = """
import os, threading
path = os.environ.get("FLEET_BENCH_STATEMENTS_FILE")
if path:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    count = [0]
    event.listen(Engine, "before_cursor_execute", lambda *a: count.__setitem__(0, count[0] + 1))
    from fleet.db.direct import STATEMENT_LISTENERS  # the protocol's hot statements, below SQLAlchemy's events
    STATEMENT_LISTENERS.append(lambda sql: count.__setitem__(0, count[0] + 1))
    def dump():
        import time
        while True:
            time.sleep(0.2)
            with open(path + ".tmp", "w") as f:
                f.write(str(count[0]))
            os.replace(path + ".tmp", path)
    threading.Thread(target=dump, daemon=True).start()
"""


class Fleet:
    """N simulated executors on their own keep-alive connections."""

    def __init__(self, server: FleetServer, n: int, mode: str, deadline: float, wait: float) -> None:
        self.host, port = server.url.removeprefix("http://").split(":")
        self.port = int(port)
        self.token = server.executor_token
        self.n, self.mode, self.deadline, self.wait = n, mode, deadline, wait
        self.polls = 0  # dequeue requests answered
        self.got: asyncio.Queue[float] = asyncio.Queue()  # perf_counter when a job arrived
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for i in range(self.n):
            self.tasks.append(asyncio.create_task(self._executor(i)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)  # stay within the server's listen backlog

    async def _executor(self, i: int) -> None:
        c = RawHTTP(self.host, self.port)
        auth = {"Authorization": f"token-executor {self.token}"}
        path = "/.executors/queue/batches/dequeue"
        wait = self.wait * (i + 1) / self.n  # the first waits end spread out, as executors started apart would
        if self.mode == "plain":
            await asyncio.sleep(i / self.n)  # spread the 1 s polls evenly, as independent machines would
        try:
            while time.monotonic() < self.deadline:
                started = time.monotonic()
                poll = path + (f"?wait={wait:.3f}" if self.mode == "long" else "")
                wait = self.wait
                status, _ = await c.post(poll, {"executorName": f"idle-{i}"}, auth)
                self.polls += 1
                if status == 200:
                    self.got.put_nowait(time.perf_counter())
                elif self.mode == "plain":
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await c.close()

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def established(proc: psutil.Process) -> int:
    return sum(1 for c in proc.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)


def statements(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def pg_sessions(cluster: PostgresCluster | None, url: str) -> tuple[int, int] | None:
    """(sessions open now, sessions ever opened) on the server's database."""
    return cluster.sessions(url) if cluster is not None else None


async def submit(c: RawHTTP, api_token: str) -> None:
    status, body = await c.post(
        "/api/v1/jobs", {"queue": "batches", "dockerSteps": [STEP]}, {"Authorization": f"Bearer {api_token}"}
    )
    assert status == 201, body


async def measure(
    server: FleetServer, n: int, mode: str, window: float, samples: int, stmt_file: Path, cluster: Any, wait: float
) -> dict[str, Any]:
    proc = psutil.Process(server.process.pid)
    rss0, fds0 = proc.memory_info().rss, proc.num_fds()
    # Bounded: every executor stops by this time whatever happens.
    fleet = Fleet(server, n, mode, time.monotonic() + window + samples * 1.5 + 120, wait)
    await fleet.start()
    # Parked: every executor's first poll has been answered (plain) or is held (long).
    settle = time.monotonic() + 60
    while time.monotonic() < settle and proc.num_fds() < fds0 + n * 0.99:
        await asyncio.sleep(0.2)
    connected = established(proc)
    await asyncio.sleep(2.0)
    sessions0 = pg_sessions(cluster, server.database_url)
    cpu0, st0, polls0, t0 = proc.cpu_times(), statements(stmt_file), fleet.polls, time.monotonic()
    await asyncio.sleep(window)
    cpu1, st1, polls1, t1 = proc.cpu_times(), statements(stmt_file), fleet.polls, time.monotonic()
    sessions1 = pg_sessions(cluster, server.database_url)
    elapsed = t1 - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    rss, fds = proc.memory_info().rss, proc.num_fds()
    host, port = server.url.removeprefix("http://").split(":")
    api = RawHTTP(host, int(port))
    lat: list[float] = []
    try:
        for _ in range(samples):
            while not fleet.got.empty():
                fleet.got.get_nowait()
            t = time.perf_counter()
            await submit(api, server.api_token)
            arrived = await asyncio.wait_for(fleet.got.get(), timeout=10)
            lat.append(arrived - t)
            await asyncio.sleep(0.05)
    finally:
        await api.close()
    sessions2 = pg_sessions(cluster, server.database_url)
    await fleet.stop()
    polls = polls1 - polls0
    lat.sort()
    out: dict[str, Any] = {
        "connected": connected,
        "cpu_share_of_core": round(cpu, 3),
        "statements_per_s": round((st1 - st0) / elapsed, 1),
        "polls_per_s": round(polls / elapsed, 1),
        "statements_per_idle_poll": round((st1 - st0) / polls, 3) if polls else None,
        "rss_mib": round(rss / 2**20, 1),
        "rss_kib_per_waiter": round((rss - rss0) / 1024 / n, 1),
        "fds_per_waiter": round((fds - fds0) / n, 2),
        "pickup_p50_ms": round(statistics.median(lat) * 1000, 2),
        "pickup_p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 2),
        "pickup_max_ms": round(lat[-1] * 1000, 2),
    }
    if sessions0 and sessions1 and sessions2:
        out["pg_sessions_open"] = [sessions0[0], sessions1[0], sessions2[0]]
        out["pg_sessions_opened_during_run"] = sessions2[1] - sessions0[1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1000", help="parked executors, comma-separated (e.g. 1000,10000)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--modes", default="long,plain", help="long (agent) and/or plain (seeds' 1 s polling)")
    ap.add_argument("--window", type=float, default=15.0, help="idle window in seconds")
    ap.add_argument("--samples", type=int, default=100, help="pickup latency samples")
    ap.add_argument("--wait", type=float, default=10.0, help="long-poll wait (the agent's default is 10 s)")
    ap.add_argument("--quick", action="store_true", help="1,000 executors, 6 s windows, 30 samples")
    args = ap.parse_args()
    if args.quick:
        args.counts, args.window, args.samples = "1000", 6.0, 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-idle-"))
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    os.environ["PYTHONPATH"] = f"{tmp / 'site'}:{os.environ.get('PYTHONPATH', '')}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cluster = None
    try:
        for backend in args.backends.split(","):
            if backend == "postgresql":
                cluster = cluster or start_cluster(tmp / "pg")
            for n in (int(x) for x in args.counts.split(",")):
                if n + 100 > hard:
                    print(f"skipping {n}: the fd limit is {hard}")
                    continue
                for mode in args.modes.split(","):
                    url = cluster.create_database() if backend == "postgresql" and cluster else None
                    work = tmp / f"{backend}-{n}-{mode}"
                    stmt_file = work / "statements"
                    os.environ["FLEET_BENCH_STATEMENTS_FILE"] = str(stmt_file)
                    work.mkdir()
                    server = start_fleet_server(work, url)
                    try:
                        samples = args.samples if mode == "long" else max(5, args.samples // 5)
                        pg = cluster if backend == "postgresql" else None
                        fig = asyncio.run(measure(server, n, mode, args.window, samples, stmt_file, pg, args.wait))
                    finally:
                        server.stop()
                    print(json.dumps({"backend": backend, "executors": n, "mode": mode, **fig}), flush=True)
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
