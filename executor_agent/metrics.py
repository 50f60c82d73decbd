"""Prometheus families of the agent, served on EXECUTOR_METRICS_ADDR and sent with every heartbeat.

The paths follow the seeds' scrape config: `/proxy?module=executor` (this process), `/proxy?module=node`
(forwarded to NODE_EXPORTER_URL), `/proxy?module=registry` (forwarded to DOCKER_REGISTRY_NODE_EXPORTER_URL, the
registry mirror's node_exporter), plus plain `/metrics`. See docs/executor.md and docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

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


class MetricsServer:
    """A small HTTP server in a daemon thread; `port` is the bound port (useful when configured as :0).

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

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                url = urlsplit(self.path)
                module = parse_qs(url.query).get("module", ["executor"])[0]
                if url.path == "/metrics" or (url.path == "/proxy" and module == "executor"):
                    self._reply(200, exposition().encode(), CONTENT_TYPE_LATEST)
                elif url.path == "/proxy" and module in upstreams:
                    self._forward(*upstreams[module])
                else:
                    self._reply(404, b"not found: try /metrics or /proxy?module=executor|node|registry\n", "text/plain")

            def _forward(self, variable: str, upstream: str) -> None:
                if not upstream:
                    self._reply(404, f"{variable} is not set\n".encode(), "text/plain")
                    return
                try:
                    with urllib.request.urlopen(f"{upstream}/metrics", timeout=10) as reply:
                        body = reply.read()
                        self._reply(200, body, reply.headers.get("Content-Type", "text/plain"))
                except (urllib.error.URLError, OSError) as exc:
                    self._reply(
                        502, f"node_exporter at {upstream} ({variable}) unreachable: {exc}\n".encode(), "text/plain"
                    )

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
