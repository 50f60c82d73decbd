"""The publisher's own HTTP endpoint: /metrics (Prometheus) and /healthz."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from executor_agent.metrics_http import MetricsHTTPServer, routing_app

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer(MetricsHTTPServer):
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: HealthCheck) -> None:
        def healthz(_: dict[str, list[str]]) -> tuple[int, str, bytes]:
            healthy, detail = health()
            return 200 if healthy else 503, "application/json", json.dumps(detail).encode()

        app = routing_app(registry, {"/healthz": healthz}, b"not found; try /metrics or /healthz\n")
        # No request log: scrapes every few seconds would drown the publisher's own log lines.
        super().__init__(host, port, app, name="status-http", request_log=None)
