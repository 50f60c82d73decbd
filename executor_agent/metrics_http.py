"""The HTTP server behind the agent's EXECUTOR_METRICS_ADDR and the publisher's EXECUTOR_METRIC_PROMETHEUS_ADDR.

prometheus_client's own WSGI machinery does the work: `make_wsgi_app` answers `/metrics` (content negotiation,
gzip, `name[]` filters) and its `ThreadingWSGIServer` serves in daemon threads. `start_http_server` itself is not
used because it serves one registry on every path, while both programs have routes of their own (`/proxy`,
`/healthz`); those are small WSGI functions passed in here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# A route: the query parameters -> (status, content type, body); or None to serve the registry's metrics.
Route = Callable[[dict[str, list[str]]], tuple[int, str, bytes] | None]

_REASONS = {200: "OK", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}


def reply(start_response: StartResponse, status: int, content_type: str, body: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, '')}".rstrip(),
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def routing_app(registry: CollectorRegistry, routes: Mapping[str, Route], not_found: bytes) -> WSGIApp:
    """`/metrics` from `registry`, `routes` by path, `not_found` (text) for every other path."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = routes.get(path)
        if path != "/metrics" and route is None:
            return reply(start_response, 404, "text/plain", not_found)
        answer = route(parse_qs(environ.get("QUERY_STRING", ""))) if route else None
        if answer is None:
            return metrics(environ, start_response)
        return reply(start_response, *answer)

    return app


def _handler(request_log: logging.Logger | None) -> type[WSGIRequestHandler]:
    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            # A scrape every few seconds would drown a program's own lines: debug at most, or nowhere.
            if request_log is not None:
                request_log.debug("metrics: " + format, *args)

    return Handler


class MetricsHTTPServer:
    """`app` on HOST:PORT in a daemon thread. The constructor binds, so a taken port raises OSError there;
    `port` is the bound port (useful when configured as :0)."""

    def __init__(self, host: str, port: int, app: WSGIApp, *, name: str, request_log: logging.Logger | None) -> None:
        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_handler(request_log))
        # A short poll interval so that stop() returns at once when the program shuts down.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
