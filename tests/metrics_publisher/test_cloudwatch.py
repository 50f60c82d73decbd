"""CloudWatch against a moto server on loopback, reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import pytest

from metrics_publisher.backends.cloudwatch import METRIC_NAME, CloudWatchBackend
from tests.metrics_publisher.common import cloudwatch_client, make_publisher, published
from tests.metrics_publisher.standins import FaultProxy, FleetStandIn


def test_round_publishes_every_queue_with_dimensions(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, fleet_standin: FleetStandIn, namespace: str
) -> None:
    client = cloudwatch_client(monkeypatch, moto_url)
    fleet_standin.set("batches", queued=2, processing=1, errored=1)
    fleet_standin.set("codeintel", queued=5)
    publisher = make_publisher(fleet_standin, [CloudWatchBackend(client, namespace, namespace)])

    result = publisher.run_round(wait=10)

    assert result.ok, result.errors
    assert result.calls == {"cloudwatch": 1}
    assert published(client, namespace, "batches") == [4.0]
    assert published(client, namespace, "codeintel") == [5.0]
    metrics = client.list_metrics(Namespace=namespace)["Metrics"]
    dims = sorted(tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in metrics)
    assert dims == [
        (("environment", namespace), ("queueName", "batches")),
        (("environment", namespace), ("queueName", "codeintel")),
    ]
    assert {m["MetricName"] for m in metrics} == {METRIC_NAME}


def test_allocation_and_multi_queue_group(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, fleet_standin: FleetStandIn, namespace: str
) -> None:
    client = cloudwatch_client(monkeypatch, moto_url)
    fleet_standin.set("codeintel", queued=3)
    fleet_standin.set("batches", queued=4)
    publisher = make_publisher(
        fleet_standin,
        [CloudWatchBackend(client, namespace, "staging")],
        allocations={"batches": {"aws": 0.25, "gcp": 0.75}, "batches_codeintel": {"gcp": 1.0}},
        groups=(("batches", "codeintel"),),
    )

    assert publisher.run_round(wait=10).ok
    assert published(client, namespace, "batches", "staging") == [1.0]
    assert published(client, namespace, "codeintel", "staging") == [3.0]
    # The group is wholly allocated to Google: AWS publishes 0 so its autoscaler shrinks.
    assert published(client, namespace, "batches_codeintel", "staging") == [0.0]


def test_split_only_at_the_api_limit(
    monkeypatch: pytest.MonkeyPatch, moto_url: str, fleet_standin: FleetStandIn, namespace: str
) -> None:
    proxy = FaultProxy(moto_url)
    proxy.start()
    try:
        client = cloudwatch_client(monkeypatch, proxy.url)
        for i in range(1500):
            fleet_standin.set(f"q{i:04d}", queued=i % 7)
        publisher = make_publisher(fleet_standin, [CloudWatchBackend(client, namespace, namespace)])
        result = publisher.run_round(wait=60)
        assert result.ok, result.errors
        assert result.calls == {"cloudwatch": 2}
        assert proxy.count("PutMetricData") == 2
        assert published(client, namespace, "q1499") == [float(1499 % 7)]
    finally:
        proxy.stop()


def test_static_keys_and_region_reach_the_endpoint(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    client = cloudwatch_client(monkeypatch, moto_url)
    assert client.meta.region_name == "us-east-1"
    assert client.meta.endpoint_url == moto_url
    assert client._request_signer._credentials.access_key == "AKIDTEST"
