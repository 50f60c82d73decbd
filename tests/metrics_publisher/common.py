"""Test building blocks shared by the publisher's tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics_publisher.backends import cloudwatch, google
from metrics_publisher.backends.base import Backend
from metrics_publisher.backends.cloudwatch import METRIC_NAME
from metrics_publisher.config import Allocations, QueueGroups
from metrics_publisher.publisher import Publisher
from metrics_publisher.source import FleetQueues
from metrics_publisher.telemetry import Telemetry
from tests.metrics_publisher.standins import FleetStandIn, MonitoringServer


def cloudwatch_client(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return cloudwatch.make_client("us-east-1", "AKIDTEST", "secret", None, timeout=5)


def google_backend(monitoring: MonitoringServer, project: str = "my-project") -> google.CloudMonitoringBackend:
    client = google.make_client(None, monitoring.endpoint)
    # The stand-in does not enforce Cloud Monitoring's 5 s spacing; tests run rounds back to back.
    return google.CloudMonitoringBackend(client, project, "prod", timeout=5, min_write_spacing=0)


class FakeClock:
    """Monotonic time the test moves, so backoff is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_publisher(
    fleet: FleetStandIn,
    backends: Sequence[Backend],
    *,
    interval: float = 5.0,
    allocations: Allocations | None = None,
    groups: QueueGroups = (),
    clock: Callable[[], float] | None = None,
) -> Publisher:
    source = FleetQueues(fleet.url, fleet.token, timeout=2)
    kwargs: dict[str, Any] = {"clock": clock} if clock else {}
    return Publisher(
        source,
        backends,
        interval=interval,
        allocations=allocations or {},
        groups=groups,
        telemetry=Telemetry(),
        **kwargs,
    )


def published(
    client: Any, namespace: str, queue: str, environment: str | None = None, since: datetime | None = None
) -> list[float]:
    """Values stored for one series, oldest first. moto 5.2 ignores the namespace when dimensions are given,
    so tests use their namespace as the environment label too, which keeps their series apart. Points of one
    minute are aggregated (Maximum); `since` leaves out earlier rounds."""
    environment = environment or namespace
    now = datetime.now(UTC)
    reply = client.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": METRIC_NAME,
                        "Dimensions": [
                            {"Name": "queueName", "Value": queue},
                            {"Name": "environment", "Value": environment},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                    "Unit": "Count",
                },
            }
        ],
        StartTime=since or now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        ScanBy="TimestampAscending",
    )
    return list(reply["MetricDataResults"][0]["Values"])


def service_account_key() -> tuple[dict[str, str], bytes]:
    """A freshly generated service account key (as Google issues them) and its public key PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    info = {
        "type": "service_account",
        "project_id": "acme-prod",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "metric-writer@acme-prod.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return info, public
