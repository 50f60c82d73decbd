"""The agent's metrics server forwards the registry mirror's node_exporter at /proxy?module=registry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from executor_agent import metrics


@pytest.fixture
def registry_exporter() -> Iterator[str]:
    """A node_exporter stand-in on loopback (a real HTTP server answering /metrics)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'node_filesystem_avail_bytes{mountpoint="/var/lib/docker"} 7\n' if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_registry_module_is_proxied_and_created_series_are_gone(
    registry_exporter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_REGISTRY_NODE_EXPORTER_URL", registry_exporter + "/")
    server = metrics.MetricsServer("127.0.0.1:0", "")  # the URL comes from the environment by default
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        reply = httpx.get(base + "/proxy?module=registry")
        assert reply.status_code == 200 and 'mountpoint="/var/lib/docker"} 7' in reply.text
        metrics.processor_total.labels("batches").inc()
        assert "_created" not in httpx.get(base + "/metrics").text
    finally:
        server.stop()
    unset = metrics.MetricsServer("127.0.0.1:0", "", registry_exporter_url="")
    unset.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{unset.port}/proxy?module=registry")
        assert reply.status_code == 404 and "DOCKER_REGISTRY_NODE_EXPORTER_URL is not set" in reply.text
    finally:
        unset.stop()
    down = metrics.MetricsServer("127.0.0.1:0", "", registry_exporter_url="http://127.0.0.1:1")
    down.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{down.port}/proxy?module=registry")
        assert reply.status_code == 502 and "DOCKER_REGISTRY_NODE_EXPORTER_URL" in reply.text
    finally:
        down.stop()
