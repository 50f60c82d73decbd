"""Several server processes on one database: `--workers`, and long polls woken across processes by NOTIFY."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.fleet_server import FleetServer, start_fleet_server
from tests.support.postgres import PostgresCluster

SPEC = {"queue": "batches", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}


def park_dequeues(server: FleetServer, count: int, wait: float) -> tuple[list[threading.Thread], list[Any]]:
    """Start `count` long polls, each on its own connection; results land in the returned list."""
    results: list[Any] = []

    def poll(i: int) -> None:
        with server.executor() as ex:
            started = time.monotonic()
            r = ex.post("/.executors/queue/batches/dequeue", params={"wait": wait}, json={"executorName": f"e{i}"})
            results.append((r.status_code, time.monotonic() - started))

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads, results


def test_workers_refused_on_sqlite(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FLEET_EXECUTORS_ACCESS_TOKEN": "x" * 24,
        "FLEET_API_TOKEN": "y" * 24,
        "FLEET_WORKERS": "2",
        "FLEET_HTTP_ADDR": "127.0.0.1:1",
    }
    r = subprocess.run(
        [sys.executable, "-m", "fleet", "server"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "FLEET_WORKERS=2" in lines[0] and "PostgreSQL" in lines[0]


def test_long_poll_woken_by_another_server_process(tmp_path: Path, pg_cluster: PostgresCluster) -> None:
    """Waiters on one server get jobs submitted through another within moments, not at the next re-check.

    The re-check period is set far beyond the poll's wait, so only a NOTIFY relayed by the database can
    hand these jobs over before the polls time out with 204.
    """
    url = pg_cluster.create_database()
    a = start_fleet_server(tmp_path / "a", url, long_poll_recheck_seconds="60")
    b = start_fleet_server(tmp_path / "b", url, long_poll_recheck_seconds="60")
    try:
        threads, results = park_dequeues(a, 3, wait=15)
        time.sleep(1.0)  # the polls are now parked inside server a
        with b.api() as api:
            for _ in range(3):
                assert api.post("/api/v1/jobs", json=SPEC).status_code == 201
        for t in threads:
            t.join(30)
        assert sorted(code for code, _ in results) == [200, 200, 200], results
        assert max(seconds for _, seconds in results) < 10, results
    finally:
        a.stop()
        b.stop()


def test_workers_share_one_address(tmp_path: Path, pg_cluster: PostgresCluster) -> None:
    """With FLEET_WORKERS=2 every parked poll is answered, whichever process holds it and whichever took the submit."""
    server = start_fleet_server(
        tmp_path / "fleet", pg_cluster.create_database(), workers="2", long_poll_recheck_seconds="60"
    )
    try:
        threads, results = park_dequeues(server, 6, wait=15)
        time.sleep(1.5)
        with server.api() as api:
            for _ in range(6):
                assert api.post("/api/v1/jobs", json=SPEC).status_code == 201
        for t in threads:
            t.join(30)
        assert sorted(code for code, _ in results) == [200] * 6, results
        with server.api() as api:
            jobs = api.get("/api/v1/jobs", params={"state": "processing"}).json()
        assert len(jobs["jobs"]) == 6
    finally:
        server.stop()
    assert server.process.returncode is not None
