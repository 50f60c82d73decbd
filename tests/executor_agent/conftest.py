"""Fixtures for the agent's tests: one private Docker Engine per session and a real fleet server per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.executor_agent.helpers import AgentProcess, agent_env, start_agent
from tests.support.docker_engine import DockerEngine, start_docker_engine
from tests.support.fleet_server import FleetServer


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = start_docker_engine()
    yield engine
    engine.stop()


@pytest.fixture
def agents(
    fleet_server: FleetServer, docker_engine: DockerEngine, tmp_path: Path
) -> Iterator[Callable[..., AgentProcess]]:
    """Start `executor run` processes (env overrides as keyword arguments); all are killed at the end."""
    started: list[AgentProcess] = []

    def start(**overrides: str) -> AgentProcess:
        env = agent_env(fleet_server, tmp_path, docker_engine.host, **overrides)
        agent = start_agent(env, tmp_path / f"executor-{len(started)}.log")
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
