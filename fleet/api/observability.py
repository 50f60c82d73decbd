"""/healthz and /metrics: request counts and latencies by route; queue, executor and job series read at scrape time.

The series are listed in docs/operations.md.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.api import fleet_view
from fleet.api.job_metrics import JobActivity
from fleet.store import Store

router = APIRouter()
# `*_created` series double every counter and histogram and no dashboard reads them.
disable_created_metrics()


class QueueCollector(Collector):
    """Queue and executor gauges read from the store at scrape time, and the job activity series."""

    def __init__(self, store: Store, heartbeat_interval: float = 5.0) -> None:
        self.store = store
        self.heartbeat_interval = heartbeat_interval
        self.activity = JobActivity(store)

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "fleet_queue_size",
            "Jobs queued + errored + processing per queue (what autoscaling reads).",
            labels=["queue"],
        )
        jobs = GaugeMetricFamily("fleet_queue_jobs", "Jobs per queue and state.", labels=["queue", "state"])
        age = GaugeMetricFamily(
            "fleet_queue_oldest_queued_age_seconds",
            "Age of the oldest queued job per queue; absent while the queue has no queued job.",
            labels=["queue"],
        )
        serving = GaugeMetricFamily(
            "fleet_queue_executors", "Active (healthy or late) executors serving each queue.", labels=["queue"]
        )
        unserved = GaugeMetricFamily(
            "fleet_queue_unserved_seconds",
            "How long a queue has had jobs waiting and no active executor; absent while served or empty.",
            labels=["queue"],
        )
        health = GaugeMetricFamily("fleet_executors", "Executors known to the server, per health.", labels=["health"])
        executors = fleet_view.executor_records(self.store, self.heartbeat_interval)
        for q in fleet_view.queue_records(self.store, executors):
            size.add_metric([q["name"]], q["size"])
            for state in ("queued", "processing", "errored", "completed", "failed", "canceled"):
                jobs.add_metric([q["name"], state], q[state])
            if q["oldestQueuedAgeSeconds"] is not None:  # 0 would read as "a job waited 0 s"
                age.add_metric([q["name"]], q["oldestQueuedAgeSeconds"])
            serving.add_metric([q["name"]], q["activeExecutors"])
            if q["unservedSeconds"] is not None:
                unserved.add_metric([q["name"]], q["unservedSeconds"])
        counts = Tally(e["health"] for e in executors)
        for word in fleet_view.ExecutorHealth:
            health.add_metric([word.value], counts.get(word.value, 0))
        yield from (size, jobs, age, serving, unserved, health)
        yield from self.activity.collect()


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.count = Counter(
            "fleet_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "fleet_http_request_duration_seconds",
            "HTTP request latency by route (long-polling dequeues include their wait).",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        # The labelled children, looked up once: labels() costs more than the observation itself. Keys are route
        # templates, methods and statuses, so these stay as small as the series they name.
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.latency.labels(method, route)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[method, route, status] = self.count.labels(method, route, str(status))
        timer.observe(seconds)
        counter.inc()


class RequestMetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): counts and times requests by route template."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.record(scope["method"], path, status[0], time.perf_counter() - start)


def build_registry() -> tuple[CollectorRegistry, RequestMetrics]:
    registry = CollectorRegistry()
    return registry, RequestMetrics(registry)


@router.get("/healthz")
def healthz(request: Request) -> Any:
    store: Store = request.app.state.store
    try:
        with store.db.read() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the point of a health check is to report any failure
        return JSONResponse({"status": "error", "database": str(exc).splitlines()[0]}, status_code=503)
    return {"status": "ok", "database": store.db.engine.dialect.name}


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
