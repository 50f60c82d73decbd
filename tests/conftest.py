"""Fixtures shared by the whole suite: database URLs on both backends and a real `fleet server`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet_server import FleetServer, start_fleet_server
from tests.support.postgres import PostgresCluster, start_cluster


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("pg"))
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend: every store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.db"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def fleet_server(tmp_path: Path) -> Iterator[FleetServer]:
    """A real `fleet server` on loopback with SQLite; short stall/retry times suit tests of the executor agent."""
    server = start_fleet_server(
        tmp_path / "fleet", stalled_job_seconds="3", resetter_interval_seconds="0.5", retry_delay_seconds="0"
    )
    yield server
    server.stop()
