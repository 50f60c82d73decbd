"""End to end with the real `fleet server`: submitted jobs show up as the published size; completed ones leave it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from metrics_publisher.backends.cloudwatch import CloudWatchBackend
from metrics_publisher.publisher import Publisher
from metrics_publisher.source import FleetQueues
from metrics_publisher.telemetry import Telemetry
from tests.metrics_publisher.common import cloudwatch_client, google_backend, published
from tests.metrics_publisher.standins import MonitoringServer
from tests.support.fleet_server import FleetServer

JOB = {"dockerSteps": [{"image": "alpine", "commands": ["true"]}]}


def submit(server: FleetServer, queue: str, count: int) -> None:
    with server.api() as api:
        for _ in range(count):
            response = api.post("/api/v1/jobs", json={"queue": queue, **JOB})
            assert response.status_code in (200, 201), response.text


def dequeue_and_complete(server: FleetServer, queue: str, count: int) -> None:
    with server.executor() as executor:
        for _ in range(count):
            job = executor.post(f"/.executors/queue/{queue}/dequeue", json={"executorName": "e2e", "version": "1"})
            assert job.status_code == 200, job.text
            done = executor.post(
                f"/.executors/queue/{queue}/markComplete", json={"executorName": "e2e", "jobId": job.json()["id"]}
            )
            assert done.status_code == 204, done.text


@pytest.mark.slow
def test_published_size_follows_the_fleet_server(
    fleet_server: FleetServer,
    monitoring: MonitoringServer,
    moto_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cw = CloudWatchBackend(cloudwatch_client(monkeypatch, moto_url), namespace, namespace)
    publisher = Publisher(
        FleetQueues(fleet_server.url, fleet_server.api_token, timeout=5),
        [cw, google_backend(monitoring)],
        interval=5,
        allocations={},
        groups=(("batches", "codeintel"),),
        telemetry=Telemetry(),
    )
    submit(fleet_server, "batches", 5)
    submit(fleet_server, "codeintel", 1)

    result = publisher.run_round(wait=20)
    assert result.ok, result.errors
    assert result.calls == {"cloudwatch": 1, "cloud-monitoring": 1}
    values = monitoring.values(monitoring.requests[-1])
    assert (values["batches"], values["codeintel"], values["batches_codeintel"]) == (5, 1, 6)
    assert published(cw._client, namespace, "batches")[-1] == 5.0

    # A dequeued job is still work the fleet must hold capacity for; only completion removes it.
    with fleet_server.executor() as executor:
        claimed = executor.post("/.executors/queue/batches/dequeue", json={"executorName": "e2e", "version": "1"})
        assert claimed.status_code == 200
    assert publisher.run_round(wait=20).ok
    assert monitoring.values(monitoring.requests[-1])["batches"] == 5
    with fleet_server.executor() as executor:
        executor.post(
            "/.executors/queue/batches/markComplete", json={"executorName": "e2e", "jobId": claimed.json()["id"]}
        )

    dequeue_and_complete(fleet_server, "batches", 2)
    # moto keeps whole seconds: a second apart, the last round's point is the only one from `since` on.
    time.sleep(1.05)
    before_last_round = datetime.now(UTC).replace(microsecond=0)
    assert publisher.run_round(wait=20).ok
    values = monitoring.values(monitoring.requests[-1])
    assert (values["batches"], values["batches_codeintel"]) == (2, 3)
    assert published(cw._client, namespace, "batches", since=before_last_round) == [2.0]
    publisher.close()
