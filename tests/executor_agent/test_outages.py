"""Outages longer than the stall time: no job runs twice, results go out soon after recovery, and a database
outage is a 503 with Retry-After and one log line each way (down, up). A real `fleet server`, a real `executor`
(shell runtime), real outages: the server process stopped, or the PostgreSQL cluster stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.executor_agent.helpers import agent_env, start_agent, step_output, submit, wait_for, wait_state
from tests.support.fleet_server import FleetServer, start_fleet_server
from tests.support.postgres import PostgresCluster, start_cluster

STALL = "8"  # seconds; each outage below lasts longer
OUTAGE = 10.0
SHELL = {"EXECUTOR_RUNTIME": "shell", "EXECUTOR_TRUSTED_QUEUES": "batches", "EXECUTOR_HEARTBEAT_INTERVAL": "1s"}


def healthy(server: FleetServer) -> bool:
    try:
        return httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def restart(server: FleetServer) -> None:
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "fleet", "server", "--log-level", "info"],
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.log_path.parent,
        )
    wait_for("the restarted server to answer", lambda: healthy(server), timeout=300)


def counting_job(server: FleetServer, runs: Path) -> int:
    # Each run of the step appends a line to a file outside the workspace: a second run shows up there.
    return submit(server, dockerSteps=[{"image": "-", "commands": [f"echo run >> {runs}", "echo started", "sleep 3",
                                                                   "echo finished"]}])  # fmt: skip


@pytest.fixture
def outage_server(tmp_path: Path) -> Iterator[FleetServer]:
    server = start_fleet_server(tmp_path / "fleet", stalled_job_seconds=STALL, resetter_interval_seconds="1")
    yield server
    server.stop()


def run_through_outage(server: FleetServer, tmp_path: Path, outage: object) -> tuple[dict, Path, float]:
    """Start a job, freeze the agent (so it cannot heartbeat either), run the outage, thaw the agent two seconds
    after the server answers again. The stall time has passed since the last heartbeat, but not since recovery."""
    runs = tmp_path / "runs"
    agent = start_agent(agent_env(server, tmp_path, "", **SHELL), tmp_path / "agent.log")
    try:
        job_id = counting_job(server, runs)
        wait_for("the step to start", lambda: "started" in step_output(server, job_id, "step.docker.0"), timeout=300)
        agent.signal(signal.SIGSTOP)
        with outage:  # type: ignore[attr-defined]
            pass
        time.sleep(2)  # the scenario: the first resetter rounds after recovery run before the agent is back
        agent.signal(signal.SIGCONT)
        thawed = time.monotonic()
        record = wait_state(server, job_id, timeout=300)
        return record, runs, time.monotonic() - thawed
    finally:
        agent.signal(signal.SIGCONT)
        agent.stop()


class ServerDown:
    def __init__(self, server: FleetServer) -> None:
        self.server = server

    def __enter__(self) -> None:
        self.server.stop()
        time.sleep(OUTAGE)
        restart(self.server)

    def __exit__(self, *_: object) -> None:
        return None


class DatabaseDown:
    def __init__(self, server: FleetServer, cluster: PostgresCluster) -> None:
        self.server, self.cluster = server, cluster
        self.during: httpx.Response | None = None

    def __enter__(self) -> None:
        self.cluster.stop()
        with self.server.executor() as ex:
            deadline = time.monotonic() + OUTAGE
            while time.monotonic() < deadline:  # requests during the outage: answered, never a 500
                self.during = ex.post("/.executors/queue/batches/heartbeat", json={"executorName": "probe"})
                assert self.during.status_code == 503, self.during.text
                time.sleep(0.1)
        self.cluster.start()
        wait_for("the server to reach its database again", lambda: healthy(self.server), timeout=300)

    def __exit__(self, *_: object) -> None:
        return None


def test_server_outage_longer_than_the_stall_time_runs_the_job_once(outage_server: FleetServer, tmp_path: Path) -> None:
    record, runs, took = run_through_outage(outage_server, tmp_path, ServerDown(outage_server))
    assert runs.read_text().count("run") == 1, f"the job ran twice: {record}"
    assert record["state"] == "completed" and record["numResets"] == 0, record
    assert "stdout: finished" in step_output(outage_server, record["id"], "step.docker.0")
    print(f"result delivered {took:.1f}s after the agent was thawed")


@pytest.mark.postgres
def test_database_outage_is_503_logged_once_and_runs_the_job_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cluster = start_cluster(tmp_path_factory.mktemp("pg-outage"))  # its own cluster: this test stops it
    try:
        server = start_fleet_server(
            tmp_path / "fleet", cluster.create_database(), stalled_job_seconds=STALL, resetter_interval_seconds="1"
        )
        try:
            outage = DatabaseDown(server, cluster)
            record, runs, _ = run_through_outage(server, tmp_path, outage)
            assert outage.during is not None and outage.during.headers["Retry-After"].isdigit()
            assert runs.read_text().count("run") == 1, f"the job ran twice: {record}"
            assert record["state"] == "completed" and record["numResets"] == 0, record
            log = server.log()
            assert log.count("database unreachable") == 1 and log.count("database reachable again") == 1, log
            assert "Traceback" not in log, log[-3000:]
        finally:
            server.stop()
    finally:
        cluster.stop()


def test_results_go_out_soon_after_the_server_returns(outage_server: FleetServer, tmp_path: Path) -> None:
    """The job ends during a 30 s outage: its backoff has grown to several seconds by then, but the probe's first
    success ends the wait, so the result does not sit behind it (the goal is a second or two; the bound here is
    loose so that a busy machine does not fail it, and still far below what a grown backoff costs)."""
    agent = start_agent(agent_env(outage_server, tmp_path, "", **SHELL), tmp_path / "agent.log")
    try:
        job_id = submit(outage_server, dockerSteps=[{"image": "-", "commands": ["echo started", "sleep 2",
                                                                                "echo finished"]}])  # fmt: skip
        wait_for("the step to start", lambda: "started" in step_output(outage_server, job_id, "step.docker.0"))
        outage_server.stop()
        time.sleep(30)  # the scenario: the job finishes while nobody can hear about it
        restart(outage_server)
        back = time.monotonic()
        record = wait_state(outage_server, job_id, timeout=300)
        took = time.monotonic() - back
    finally:
        agent.stop()
    assert record["state"] == "completed" and "stdout: finished" in step_output(outage_server, job_id, "step.docker.0")
    print(f"result recorded {took:.1f}s after the server answered again")
    assert took < 10, f"the result waited {took:.1f}s behind a grown backoff"
