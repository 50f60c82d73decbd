"""Prometheus families of the agent, served on EXECUTOR_METRICS_ADDR and sent with every heartbeat.

The paths follow the seeds' scrape config: `/proxy?module=executor` (this process), `/proxy?module=node`
(forwarded to NODE_EXPORTER_URL), `/proxy?module=registry` (forwarded to DOCKER_REGISTRY_NODE_EXPORTER_URL, the
registry mirror's node_exporter), plus plain `/metrics`. See docs/executor.md and docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from executor_agent.metrics_http import MetricsHTTPServer, routing_app
from executor_agent.settings_common import split_host_port

log = logging.getLogger(__name__)
disable_created_metrics()  # `*_created` series double every counter and no dashboard reads them
REGISTRY = CollectorRegistry(auto_describe=True)

processor_total = Counter("src_executor_processor_total", "Jobs handled by the executor.", ["queue"], registry=REGISTRY)
processor_duration = Histogram(
    "src_executor_processor_duration_seconds",
    "Time spent handling one job.",
    ["queue"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
processor_errors = Counter(
    "src_executor_processor_errors_total", "Jobs that ended errored or failed.", ["queue"], registry=REGISTRY
)
processor_handlers = Gauge(
    "src_executor_processor_handlers", "Jobs being handled right now.", ["queue"], registry=REGISTRY
)
command_total = Counter("src_apiworker_command_total", "Commands run for jobs.", ["op"], registry=REGISTRY)
command_duration = Histogram(
    "src_apiworker_command_duration_seconds", "Duration of commands run for jobs.", ["op"], registry=REGISTRY
)
command_errors = Counter(
    "src_apiworker_command_errors_total", "Commands that exited non-zero or could not run.", ["op"], registry=REGISTRY
)
apiclient_total = Counter(
    "src_apiworker_apiclient_queue_total", "Requests to the server's executor API.", ["op"], registry=REGISTRY
)
apiclient_duration = Histogram(
    "src_apiworker_apiclient_queue_duration_seconds",
    "Duration of requests to the server's executor API.",
    ["op"],
    registry=REGISTRY,
)
apiclient_errors = Counter(
    "src_apiworker_apiclient_queue_errors_total",
    "Failed requests to the server's executor API.",
    ["op"],
    registry=REGISTRY,
)


def observe_api(op: str, seconds: float, error: bool) -> None:
    apiclient_total.labels(op).inc()
    apiclient_duration.labels(op).observe(seconds)
    if error:
        apiclient_errors.labels(op).inc()


def observe_command(op: str, seconds: float, error: bool) -> None:
    command_total.labels(op).inc()
    command_duration.labels(op).observe(seconds)
    if error:
        command_errors.labels(op).inc()


def exposition() -> str:
    return generate_latest(REGISTRY).decode()


NOT_FOUND = b"not found: try /metrics or /proxy?module=executor|node|registry\n"


class MetricsServer(MetricsHTTPServer):
    """/metrics and /proxy in a daemon thread; `port` is the bound port (useful when configured as :0).

    `registry_exporter_url` defaults to DOCKER_REGISTRY_NODE_EXPORTER_URL from the environment.
    """

    def __init__(self, addr: str, node_exporter_url: str, registry_exporter_url: str | None = None) -> None:
        host, port = split_host_port(addr, "0.0.0.0")
        if registry_exporter_url is None:
            registry_exporter_url = os.environ.get("DOCKER_REGISTRY_NODE_EXPORTER_URL", "")
        upstreams = {
            "node": ("NODE_EXPORTER_URL", node_exporter_url.rstrip("/")),
            "registry": ("DOCKER_REGISTRY_NODE_EXPORTER_URL", registry_exporter_url.rstrip("/")),
        }

        def proxy(query: dict[str, list[str]]) -> tuple[int, str, bytes] | None:
            module = query.get("module", ["executor"])[0]
            if module == "executor":
                return None  # this process's own metrics, as on /metrics
            if module not in upstreams:
                return 404, "text/plain", NOT_FOUND
            return _forward(*upstreams[module])

        app = routing_app(REGISTRY, {"/proxy": proxy}, NOT_FOUND)
        super().__init__(host, port, app, name="metrics", request_log=log)


def _forward(variable: str, upstream: str) -> tuple[int, str, bytes]:
    """node_exporter's /metrics at `upstream` (named by the environment variable `variable`), passed through."""
    if not upstream:
        return 404, "text/plain", f"{variable} is not set\n".encode()
    try:
        with urllib.request.urlopen(f"{upstream}/metrics", timeout=10) as answer:
            return 200, answer.headers.get("Content-Type", "text/plain"), answer.read()
    except (urllib.error.URLError, OSError) as exc:
        return 502, "text/plain", f"node_exporter at {upstream} ({variable}) unreachable: {exc}\n".encode()
