"""Control-plane figures: protocol cycles per second and pickup latency, on SQLite and PostgreSQL.

A cycle is what an executor does per job: dequeue + addExecutionLogEntry + markComplete, through real HTTP
against `fleet server` (uvicorn) on loopback. Pickup latency is submit -> dequeue returned, with one idle client
long-polling. Clients and server share this machine's cores, so the figures are a floor, not a ceiling.

Run: .venv/bin/python bench/bench_protocol.py [--jobs N] [--backends sqlite,postgresql] [--workers 2] [--profile]
(--workers sets FLEET_WORKERS for the PostgreSQL runs; SQLite always runs one server process. --profile samples
the server with py-spy during the 8-client run and prints where its time goes, by layer; needs
`.venv/bin/pip install py-spy`.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fleet_server import FleetServer, start_fleet_server  # noqa: E402
from tests.support.postgres import start_cluster  # noqa: E402

STEP = {"image": "busybox", "commands": ["true"]}


async def submit_many(server: FleetServer, n: int) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {server.api_token}"}) as c:
        sem = asyncio.Semaphore(16)

        async def one() -> None:
            async with sem:
                r = await c.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]})
                r.raise_for_status()

        await asyncio.gather(*(one() for _ in range(n)))


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx costs about a millisecond of CPU per request; on a 2-core machine that load generator, not the server,
    would set the figure. This one costs a small fraction of that.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, object], headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(data)}\r\n\r\n"
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def worker(server: FleetServer, name: str, counter: list[int]) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    c = RawHTTP(host, int(port))
    auth = {"Authorization": f"token-executor {server.executor_token}"}
    try:
        while True:
            status, body = await c.post("/.executors/queue/batches/dequeue", {"executorName": name}, auth)
            if status == 204:
                return
            assert status == 200, body
            job = json.loads(body)
            h = {"Authorization": f"Bearer {job['token']}", "X-Sourcegraph-Job-ID": str(job["id"])}
            entry = {
                "executorName": name,
                "jobId": job["id"],
                "key": "step.docker.0",
                "command": ["true"],
                "startTime": "2026-01-01T00:00:00Z",
                "exitCode": 0,
                "out": "stdout: ok\n",
                "durationMs": 1,
            }
            status, body = await c.post("/.executors/queue/batches/addExecutionLogEntry", entry, h)
            assert status == 200, body
            status, body = await c.post(
                "/.executors/queue/batches/markComplete", {"executorName": name, "jobId": job["id"]}, h
            )
            assert status == 204, body
            counter[0] += 1
    finally:
        await c.close()


def server_cpu_seconds(server: FleetServer) -> float:
    """User + system CPU of the server and its worker processes so far."""
    proc = psutil.Process(server.process.pid)
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


@dataclass
class Rate:
    cycles_per_second: float
    server_ms_per_cycle: float  # CPU of the server processes
    client_ms_per_cycle: float  # CPU of this process, the load generator


async def cycles_per_second(server: FleetServer, jobs: int, clients: int, profile: Path | None = None) -> Rate:
    await submit_many(server, jobs)
    counter = [0]
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(server.process.pid),
                "--rate",
                "500",
                "--format",
                "raw",
                "--output",
                str(profile),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)  # py-spy attaches
    start, server_cpu, client_cpu = time.perf_counter(), server_cpu_seconds(server), time.process_time()
    await asyncio.gather(*(worker(server, f"bench-{i}", counter) for i in range(clients)))
    elapsed = time.perf_counter() - start
    server_cpu, client_cpu = server_cpu_seconds(server) - server_cpu, time.process_time() - client_cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=60)
    assert counter[0] == jobs, counter
    return Rate(jobs / elapsed, server_cpu / jobs * 1000, client_cpu / jobs * 1000)


# Layers of the server's time, by the first matching frame of a sample (innermost first).
LAYERS = [
    (
        "sqlite3 / psycopg (database driver and engine)",
        # C calls are not sampled: the Python frames that make them (SQLAlchemy's, and fleet.db.direct's).
        ("sqlite3", "psycopg", "do_execute (", "fleet/db/direct.py"),
    ),
    ("SQLAlchemy (compile cache, parameters, results)", ("sqlalchemy/",)),
    ("pydantic (body parsing)", ("pydantic",)),
    ("JSON encoding of replies", ("json/", "render (starlette/responses.py")),
    ("request metrics middleware", ("fleet/api/observability.py", "prometheus_client")),
    ("store code (fleet/store)", ("fleet/store/",)),
    ("routes (fleet/api)", ("fleet/api/",)),
    ("Starlette / FastAPI routing and middleware", ("starlette/", "fastapi/")),
    ("uvicorn HTTP parsing and transport", ("uvicorn/", "httptools", "h11")),
    ("asyncio event loop", ("asyncio/",)),
]


def profile_summary(path: Path) -> list[tuple[str, float]]:
    """Share of the server's busy samples per layer, attributed to the innermost frame of a known layer."""
    totals: dict[str, int] = {}
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any("select" in f and "selectors.py" in f for f in frames[-2:]):
            continue  # idle in the event loop's poll
        n = int(count)
        busy += n
        layer = "other"
        for frame in reversed(frames):
            hit = next((name for name, keys in LAYERS if any(k in frame for k in keys)), None)
            if hit:
                layer = hit
                break
        totals[layer] = totals.get(layer, 0) + n
    return sorted(((k, v / busy) for k, v in totals.items()), key=lambda kv: -kv[1]) if busy else []


async def pickup_latency(server: FleetServer, samples: int) -> tuple[float, float]:
    """Submit -> the dequeue's reply, with one executor long-polling and samples 50 ms apart; both on RawHTTP, so
    the load generator's own cost stays small (an httpx request alone costs about a millisecond)."""
    host, port = server.url.removeprefix("http://").split(":")
    ex, api = RawHTTP(host, int(port)), RawHTTP(host, int(port))
    auth = {"Authorization": f"token-executor {server.executor_token}"}
    submit = {"Authorization": f"Bearer {server.api_token}"}
    lat: list[float] = []
    try:
        for _ in range(samples):
            poll = asyncio.create_task(
                ex.post("/.executors/queue/codeintel/dequeue?wait=10", {"executorName": "idle"}, auth)
            )
            await asyncio.sleep(0.05)  # the poll is parked in the server
            t0 = time.perf_counter()
            status, body = await api.post("/api/v1/jobs", {"queue": "codeintel", "dockerSteps": [STEP]}, submit)
            assert status == 201, body
            status, body = await poll
            lat.append(time.perf_counter() - t0)
            assert status == 200, body
    finally:
        await ex.close()
        await api.close()
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000, help="jobs per cycle measurement")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--samples", type=int, default=200, help="pickup latency samples")
    ap.add_argument("--workers", type=int, default=1, help="server processes (FLEET_WORKERS) on PostgreSQL")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during the 8-client runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{'backend':<11} {'workers':>7} {'clients':>7} {'cycles/s':>9} {'server CPU ms/cycle':>20} "
        f"{'client CPU ms/cycle':>20}"
    )
    pickups = {}
    profiles: dict[str, list[tuple[str, float]]] = {}
    cluster = None
    for backend in args.backends.split(","):
        for clients in (1, 8, 32):
            workers = 1
            if backend == "postgresql":
                cluster = cluster or start_cluster(tmp / "pg")
                url = cluster.create_database()
                workers = args.workers
            else:
                url = f"sqlite:///{tmp}/bench-{clients}.db"
            server = start_fleet_server(tmp / f"{backend}-{clients}", url, workers=str(workers))
            try:
                profile = tmp / f"profile-{backend}.txt" if args.profile and clients == 8 else None
                rate = asyncio.run(cycles_per_second(server, args.jobs, clients, profile))
                if profile is not None:
                    profiles[backend] = profile_summary(profile)
                print(
                    f"{backend:<11} {workers:>7} {clients:>7} {rate.cycles_per_second:>9.0f} "
                    f"{rate.server_ms_per_cycle:>20.3f} {rate.client_ms_per_cycle:>20.3f}",
                    flush=True,
                )
                if clients == 1:
                    pickups[backend] = asyncio.run(pickup_latency(server, args.samples))
            finally:
                server.stop()
    for backend, (p50, p99) in pickups.items():
        print(
            f"pickup latency {backend}: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
            "(target p50 <= 3 ms, p99 <= 10 ms)"
        )
    for backend, layers in profiles.items():
        print(f"where the server's busy time goes, {backend}, 8 clients (py-spy):")
        for name, share in layers:
            print(f"  {share * 100:5.1f} %  {name}")
    if cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
