"""Prometheus: queue sizes as gauges on the publisher's /metrics, for fleets that scale on something else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from metrics_publisher.series import Sample
from metrics_publisher.telemetry import Telemetry


class PrometheusBackend:
    name: str = "prometheus"
    cloud: str | None = None

    def __init__(self, telemetry: Telemetry, environment: str) -> None:
        self._gauge = telemetry.queue_size
        self.environment = environment

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        for sample in samples:
            self._gauge.labels(queueName=sample.queue_name, environment=self.environment).set(sample.value)
        return 0

    def close(self) -> None:
        pass
