"""Turning settings into backends. Everything that can be wrong is found here, before anything is sent."""

from __future__ import annotations

from typing import TextIO

from metrics_publisher.backends import cloudwatch, google
from metrics_publisher.backends.base import Backend
from metrics_publisher.backends.dry_run import DryRunBackend
from metrics_publisher.backends.prometheus import PrometheusBackend
from metrics_publisher.config import PublisherSettings
from metrics_publisher.telemetry import Telemetry

MAX_CALL_TIMEOUT_SECONDS = 10.0


def call_timeout(settings: PublisherSettings) -> float:
    """Each network call is bounded so that a hung endpoint costs at most about one round."""
    return min(MAX_CALL_TIMEOUT_SECONDS, max(1.0, settings.publish_interval))


def cloud_targets(settings: PublisherSettings) -> list[tuple[str, str | None, str]]:
    """(backend name, cloud, human description) of every enabled cloud backend."""
    env = settings.environment_label
    targets: list[tuple[str, str | None, str]] = []
    if settings.aws_enabled:
        targets.append(
            (
                cloudwatch.CloudWatchBackend.name,
                "aws",
                f"cloudwatch region={settings.aws_region} namespace={settings.resolved_aws_namespace} "
                f"metric={cloudwatch.METRIC_NAME} unit=Count environment={env}",
            )
        )
    if settings.gcp_enabled:
        targets.append(
            (
                google.CloudMonitoringBackend.name,
                "gcp",
                f"cloud-monitoring project={settings.gcp_project_id} type={google.METRIC_TYPE} "
                f"resource={google.RESOURCE_TYPE} environment={env}",
            )
        )
    return targets


def build_backends(
    settings: PublisherSettings,
    telemetry: Telemetry,
    *,
    dry_run: bool = False,
    with_prometheus: bool = False,
    out: TextIO | None = None,
) -> list[Backend]:
    """The backends to publish to; raises ConfigError when credentials cannot be used."""
    backends: list[Backend] = []
    if dry_run:
        info = settings.google_credentials_info()
        if settings.gcp_enabled and info is not None:
            google.load_credentials(info)
        targets = cloud_targets(settings) or [("stdout", None, f"stdout environment={settings.environment_label}")]
        backends.extend(DryRunBackend(name, cloud, target, out) for name, cloud, target in targets)
    else:
        backends.extend(_cloud_backends(settings))
    if with_prometheus:
        backends.append(PrometheusBackend(telemetry, settings.environment_label))
    return backends


def _cloud_backends(settings: PublisherSettings) -> list[Backend]:
    timeout = call_timeout(settings)
    backends: list[Backend] = []
    if settings.aws_enabled:
        assert settings.aws_region is not None
        secret, token = settings.aws_secret_access_key, settings.aws_session_token
        client = cloudwatch.make_client(
            settings.aws_region,
            settings.aws_access_key_id,
            secret.get_secret_value() if secret else None,
            token.get_secret_value() if token else None,
            timeout,
        )
        backends.append(
            cloudwatch.CloudWatchBackend(client, settings.resolved_aws_namespace, settings.environment_label)
        )
    if settings.gcp_enabled:
        assert settings.gcp_project_id is not None
        client = google.make_client(settings.google_credentials_info(), settings.gcp_api_endpoint)
        backends.append(
            google.CloudMonitoringBackend(client, settings.gcp_project_id, settings.environment_label, timeout)
        )
    return backends
