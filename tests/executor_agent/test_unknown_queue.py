"""A queue the server does not have: `validate` fails its server check, `run` says so once and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.executor_agent.helpers import agent_env, start_agent
from tests.support.fleet_server import FleetServer


def test_validate_fails_the_server_check_for_an_unknown_queue(fleet_server: FleetServer, tmp_path: Path) -> None:
    env = agent_env(
        fleet_server, tmp_path, "", EXECUTOR_RUNTIME="shell", EXECUTOR_QUEUE_NAME="nosuch",
        EXECUTOR_TRUSTED_QUEUES="nosuch",
    )  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "executor_agent", "validate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1, r.stdout + r.stderr
    server_line = [line for line in r.stdout.splitlines() if "server" in line and line.startswith("✗")]
    assert len(server_line) == 1 and "'nosuch'" in server_line[0] and "fleet queues add nosuch" in server_line[0]
    good = subprocess.run(
        [sys.executable, "-m", "executor_agent", "validate"],
        env={**env, "EXECUTOR_QUEUE_NAME": "batches", "EXECUTOR_TRUSTED_QUEUES": "batches"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "✓ server" in good.stdout, good.stdout


def test_run_says_so_once_and_exits(fleet_server: FleetServer, tmp_path: Path) -> None:
    env = agent_env(
        fleet_server, tmp_path, "", EXECUTOR_RUNTIME="shell", EXECUTOR_QUEUE_NAME="nosuch",
        EXECUTOR_TRUSTED_QUEUES="nosuch",
    )  # fmt: skip
    agent = start_agent(env, tmp_path / "agent.log")
    try:
        code = agent.wait(300)  # an event (the exit), with a bound only against a hang
    finally:
        agent.stop()
    assert code == 2, agent.log()
    refusals = [line for line in agent.log().splitlines() if "dequeue refused" in line]
    assert len(refusals) == 1 and "nosuch" in refusals[0], agent.log()
