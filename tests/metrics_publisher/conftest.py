from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.metrics_publisher.standins import FaultProxy, FleetStandIn, MonitoringServer, free_port


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3's credential chain must never reach for the EC2 metadata address from a test.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.fail("moto server is missing: pip install 'moto[server]' into .venv")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def namespace() -> str:
    """A namespace of its own per test: moto keeps one store for the whole session."""
    return f"test-ns-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fleet_standin() -> Iterator[FleetStandIn]:
    stand_in = FleetStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def monitoring() -> Iterator[MonitoringServer]:
    server = MonitoringServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cw_proxy(moto_url: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_url)
    proxy.start()
    yield proxy
    proxy.stop()
