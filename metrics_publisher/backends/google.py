"""Google Cloud Monitoring: CreateTimeSeries of the custom metric the Terraform modules' autoscalers read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from metrics_publisher.backends.base import batches
from metrics_publisher.config import ConfigError
from metrics_publisher.series import Sample

# The Google clients are imported where they are used: they cost a third of a second, which every run that does
# not publish to Cloud Monitoring (and every --help) would pay.
if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import monitoring_v3

METRIC_TYPE = "custom.googleapis.com/executors/queue/size"
RESOURCE_TYPE = "global"
SCOPES = ["https://www.googleapis.com/auth/monitoring.write"]
# CreateTimeSeries accepts up to 200 time series per request.
MAX_SERIES_PER_CALL = 200
# Cloud Monitoring rejects points written to one time series more often than every 5 seconds.
MIN_WRITE_SPACING_SECONDS = 5.0
# Rounds run on a fixed cadence, so a round due exactly at the spacing may start a little early.
SPACING_TOLERANCE_SECONDS = 0.5

_CREDENTIAL_VARS = (
    "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT or EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE"
)


def make_client(credentials_info: dict[str, Any] | None, endpoint: str | None) -> monitoring_v3.MetricServiceClient:
    """A client for the endpoint: `http://HOST:PORT` is plaintext gRPC without credentials (local servers
    only); anything else is TLS with the given key or Google's default credential chain. Raises ConfigError."""
    import google.auth
    import grpc
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    if endpoint and endpoint.startswith("http://"):
        channel = grpc.insecure_channel(endpoint.removeprefix("http://").rstrip("/"))
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    if credentials_info is not None:
        credentials = load_credentials(credentials_info)
    else:
        try:
            credentials, _ = google.auth.default(scopes=SCOPES)
        except GoogleAuthError as exc:
            raise ConfigError(f"{_CREDENTIAL_VARS}: not set and no default Google credentials ({exc})") from exc
    options = {"api_endpoint": endpoint.removeprefix("https://").rstrip("/")} if endpoint else None
    return monitoring_v3.MetricServiceClient(credentials=credentials, client_options=options)


def load_credentials(info: dict[str, Any]) -> Credentials:
    """Credentials from a key, without sending anything (also what --dry-run checks). Raises ConfigError."""
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    kind = info.get("type")
    try:
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        if kind == "authorized_user":
            return user_credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    except (GoogleAuthError, ValueError) as exc:
        raise ConfigError(f"{_CREDENTIAL_VARS}: unusable {kind} key ({exc}); give the whole key file") from exc
    raise ConfigError(f"{_CREDENTIAL_VARS}: key type {kind!r} is not supported; use a service_account key")


class CloudMonitoringBackend:
    name: str = "cloud-monitoring"
    cloud: str | None = "gcp"

    def __init__(
        self,
        client: monitoring_v3.MetricServiceClient,
        project_id: str,
        environment: str,
        timeout: float,
        min_write_spacing: float = MIN_WRITE_SPACING_SECONDS,
    ) -> None:
        self._client = client
        self.project = f"projects/{project_id}"
        self.project_id = project_id
        self.environment = environment
        self._timeout = timeout
        self._spacing = min_write_spacing
        self._last_end: datetime | None = None

    def series(self, sample: Sample, at: datetime) -> monitoring_v3.TimeSeries:
        from google.api import metric_pb2
        from google.cloud import monitoring_v3

        series = monitoring_v3.TimeSeries()
        series.metric.type = METRIC_TYPE
        series.metric.labels["queueName"] = sample.queue_name
        series.metric.labels["environment"] = self.environment
        series.resource.type = RESOURCE_TYPE
        series.resource.labels["project_id"] = self.project_id
        series.metric_kind = metric_pb2.MetricDescriptor.MetricKind.GAUGE
        series.value_type = metric_pb2.MetricDescriptor.ValueType.INT64
        point = monitoring_v3.Point(
            interval=monitoring_v3.TimeInterval(end_time=at),
            value=monitoring_v3.TypedValue(int64_value=sample.value),
        )
        series.points = [point]
        return series

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        end = at
        if self._last_end is not None:
            if at < self._last_end + timedelta(seconds=self._spacing - SPACING_TOLERANCE_SECONDS):
                return 0
            # A round a few milliseconds early is stamped at the earliest accepted time instead of being skipped;
            # the tolerance bounds how far ahead of the clock that can be.
            end = max(at, self._last_end + timedelta(seconds=self._spacing))
        calls = 0
        for chunk in batches([self.series(s, end) for s in samples], MAX_SERIES_PER_CALL):
            # No client-side retry: a failed round is retried by the publisher's own backoff.
            self._client.create_time_series(
                name=self.project, time_series=list(chunk), retry=None, timeout=self._timeout
            )
            calls += 1
        self._last_end = end
        return calls

    def close(self) -> None:
        self._client.transport.close()
