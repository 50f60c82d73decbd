"""Cloud Monitoring: the real client over gRPC to a loopback MetricService serving the real protobuf messages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api import metric_pb2

from metrics_publisher.backends import google
from metrics_publisher.config import ConfigError, load_settings
from metrics_publisher.series import Sample
from tests.metrics_publisher.common import google_backend, make_publisher, service_account_key
from tests.metrics_publisher.standins import FleetStandIn, MonitoringServer


def test_one_call_per_round_with_contract_names(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    fleet_standin.set("batches", queued=2, processing=1)
    fleet_standin.set("codeintel", errored=2)
    publisher = make_publisher(fleet_standin, [google_backend(monitoring, "acme-prod")])

    result = publisher.run_round(wait=10)

    assert result.ok, result.errors
    assert len(monitoring.requests) == 1
    request = monitoring.requests[0]
    assert request.name == "projects/acme-prod"
    assert len(request.time_series) == 2
    for ts in request.time_series:
        assert ts.metric.type == "custom.googleapis.com/executors/queue/size"
        assert dict(ts.metric.labels).keys() == {"queueName", "environment"}
        assert ts.metric.labels["environment"] == "prod"
        assert ts.resource.type == "global"
        assert ts.resource.labels["project_id"] == "acme-prod"
        assert ts.metric_kind == metric_pb2.MetricDescriptor.MetricKind.GAUGE
        assert ts.value_type == metric_pb2.MetricDescriptor.ValueType.INT64
        assert len(ts.points) == 1 and ts.points[0].interval.end_time.seconds > 0
        assert ts.points[0].value.WhichOneof("value") == "int64_value"
    assert monitoring.values(request) == {"batches": 3, "codeintel": 2}
    # The real client routes the call by project, which proves it went through the generated stub.
    assert "name=projects/acme-prod" in monitoring.metadata[0].get("x-goog-request-params", "")

    fleet_standin.set("batches", queued=7)
    assert publisher.run_round(wait=10).ok
    assert len(monitoring.requests) == 2
    assert monitoring.values(monitoring.requests[1]) == {"batches": 7, "codeintel": 2}


def test_allocation_share_and_group(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    fleet_standin.set("batches", queued=3)
    fleet_standin.set("codeintel", queued=4)
    publisher = make_publisher(
        fleet_standin,
        [google_backend(monitoring)],
        allocations={"batches": {"aws": 0.5, "gcp": 0.5}},
        groups=(("codeintel", "batches"),),
    )
    assert publisher.run_round(wait=10).ok
    # 3 * 0.5 rounds up to 2: a half machine still needs a machine.
    assert monitoring.values(monitoring.requests[0]) == {"batches": 2, "batches_codeintel": 7, "codeintel": 4}


def test_split_at_200_series(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    for i in range(450):
        fleet_standin.set(f"q{i:03d}", queued=1)
    publisher = make_publisher(fleet_standin, [google_backend(monitoring)])
    result = publisher.run_round(wait=30)
    assert result.ok, result.errors
    assert result.calls == {"cloud-monitoring": 3}
    assert [len(r.time_series) for r in monitoring.requests] == [200, 200, 50]


def test_writes_are_spaced_by_five_seconds(monitoring: MonitoringServer) -> None:
    backend = google.CloudMonitoringBackend(google.make_client(None, monitoring.endpoint), "p", "prod", timeout=5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sample = [Sample("batches", 1)]
    calls = [backend.publish(sample, start + timedelta(seconds=s)) for s in (0, 1, 2, 3, 4, 4.8, 6, 9, 9.6, 15)]
    # Cloud Monitoring refuses points closer than 5 s apart on one series; a round a little early (4.8 s) is
    # stamped at +5 s rather than dropped, and the next due time counts from that stamp.
    assert calls == [1, 0, 0, 0, 0, 1, 0, 0, 1, 1]
    ends = [r.time_series[0].points[0].interval.end_time.ToDatetime(tzinfo=UTC) for r in monitoring.requests]
    assert [(e - start).total_seconds() for e in ends] == [0, 5, 10, 15]


def test_credentials_from_base64_content_and_file(tmp_path: object) -> None:
    import pathlib

    info, _ = service_account_key()
    encoded = base64.b64encode(json.dumps(info).encode()).decode()
    base = {"FLEET_API_TOKEN": "t", "EXECUTOR_METRIC_GCP_PROJECT_ID": "acme-prod"}
    base["EXECUTOR_METRIC_ENVIRONMENT_LABEL"] = "prod"
    from_content = load_settings({**base, "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": encoded})
    key_file = pathlib.Path(str(tmp_path)) / "key.json"
    key_file.write_text(json.dumps(info))
    from_file = load_settings({**base, "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE": str(key_file)})
    assert from_content.google_credentials_info() == info == from_file.google_credentials_info()

    client = google.make_client(from_content.google_credentials_info(), "127.0.0.1:1")
    credentials: Any = client.transport._credentials
    assert credentials.service_account_email == info["client_email"]
    assert credentials.scopes == google.SCOPES


@pytest.mark.parametrize(
    ("info", "hint"),
    [
        ({"type": "service_account", "client_email": "w@p.iam.gserviceaccount.com"}, "unusable service_account key"),
        ({"type": "external_account"}, "not supported"),
    ],
)
def test_unusable_keys_are_configuration_errors(info: dict[str, str], hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        google.load_credentials(info)
    assert str(caught.value).startswith("EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT")
    assert hint in str(caught.value)
