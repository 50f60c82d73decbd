"""The publisher's own Prometheus metrics, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_size = Gauge(
            "src_executors_queue_size",
            "Queue size (queued + errored + processing) per queueName, before cloud allocation.",
            ["queueName", "environment"],
            registry=self.registry,
        )
        self.rounds = Counter(
            "executor_metric_publisher_rounds_total",
            "Publishing rounds by result (ok, failed).",
            ["result"],
            registry=self.registry,
        )
        self.api_calls = Counter(
            "executor_metric_publisher_api_calls_total",
            "API calls made by each backend.",
            ["backend"],
            registry=self.registry,
        )
        self.failures = Counter(
            "executor_metric_publisher_failures_total",
            "Failed publishes by backend; `fleet` counts failed reads of the fleet server.",
            ["backend"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "executor_metric_publisher_last_success_timestamp_seconds",
            "Unix time of each backend's last successful publish.",
            ["backend"],
            registry=self.registry,
        )
