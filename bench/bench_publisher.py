"""Benchmark of `metrics-publisher`: API calls per round and latency from a queue change to the published value.

Everything runs on loopback: a moto server for CloudWatch (counted on the wire by a proxy), a gRPC
google.monitoring.v3.MetricService serving the real messages for Cloud Monitoring, and the real `fleet server`
for the latency figures. Run: .venv/bin/python bench/bench_publisher.py
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moto.server import ThreadedMotoServer  # noqa: E402

from metrics_publisher.backends import cloudwatch, google  # noqa: E402
from metrics_publisher.backends.base import Backend  # noqa: E402
from metrics_publisher.publisher import Publisher  # noqa: E402
from metrics_publisher.source import FleetQueues  # noqa: E402
from metrics_publisher.telemetry import Telemetry  # noqa: E402
from tests.metrics_publisher.standins import FaultProxy, FleetStandIn, MonitoringServer, free_port  # noqa: E402
from tests.support.fleet_server import start_fleet_server  # noqa: E402

JOB = {"queue": "batches", "dockerSteps": [{"image": "alpine", "commands": ["true"]}]}


def backends(proxy: FaultProxy, monitoring: MonitoringServer, spacing: float) -> list[Backend]:
    os.environ["AWS_ENDPOINT_URL"] = proxy.url
    client = cloudwatch.make_client("us-east-1", "AKIDBENCH", "secret", None, timeout=10)
    gclient = google.make_client(None, monitoring.endpoint)
    return [
        cloudwatch.CloudWatchBackend(client, "bench", "bench"),
        google.CloudMonitoringBackend(gclient, "bench", "bench", timeout=10, min_write_spacing=spacing),
    ]


def calls_per_round(proxy: FaultProxy, monitoring: MonitoringServer) -> None:
    print("API calls per round (counted on the wire; limits: CloudWatch 1000 datums, Cloud Monitoring 200 series)")
    print(f"{'queues':>7} {'CloudWatch':>11} {'Cloud Monitoring':>17} {'round ms':>9}")
    for count in (1, 10, 100, 1000, 1500):
        fleet = FleetStandIn()
        fleet.start()
        for i in range(count):
            fleet.set(f"q{i:04d}", queued=i % 5)
        publisher = Publisher(
            FleetQueues(fleet.url, fleet.token, timeout=10),
            backends(proxy, monitoring, spacing=0),
            interval=5,
            allocations={},
            groups=(),
            telemetry=Telemetry(),
        )
        cw_before, gcp_before = proxy.count("PutMetricData"), monitoring.attempts
        started = time.monotonic()
        result = publisher.run_round(wait=60)
        elapsed = (time.monotonic() - started) * 1000
        assert result.ok, result.errors
        cw, gcp = proxy.count("PutMetricData") - cw_before, monitoring.attempts - gcp_before
        print(f"{count:>7} {cw:>11} {gcp:>17} {elapsed:>9.0f}")
        publisher.close()
        fleet.stop()


def _cloudwatch_value_seen(proxy: FaultProxy, after: float, value: float) -> float | None:
    with proxy.lock:
        bodies = list(proxy.bodies)
    for at, operation, body in bodies:
        if at >= after and operation == "PutMetricData":
            data = json.loads(body)["MetricData"]
            if any(d["Value"] == value and d["Dimensions"][0]["Value"] == "batches" for d in data):
                return at
    return None


def _google_value_seen(monitoring: MonitoringServer, after: float, value: int) -> float | None:
    for at, request in zip(list(monitoring.received_at), list(monitoring.requests), strict=False):
        if at >= after and monitoring.values(request).get("batches") == value:
            return at
    return None


def _wait(
    find: Callable[[Any, float, Any], float | None], where: Any, after: float, value: Any, seconds: float
) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find(where, after, value)
        if found is not None:
            return found
        time.sleep(0.01)
    raise RuntimeError("the new value was not published in time")


def latency(proxy: FaultProxy, monitoring: MonitoringServer, interval: float, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_fleet_server(Path(tmp) / "fleet")
        stop = threading.Event()
        publisher = Publisher(
            FleetQueues(server.url, server.api_token, timeout=5),
            backends(proxy, monitoring, spacing=google.MIN_WRITE_SPACING_SECONDS),
            interval=interval,
            allocations={},
            groups=(),
            telemetry=Telemetry(),
        )
        loop = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
        loop.start()
        cw_lat: list[float] = []
        gcp_lat: list[float] = []
        try:
            with server.api() as api:
                for n in range(1, samples + 1):
                    # Spread submissions over the cycle (Cloud Monitoring is written at most every 5 s) so the
                    # figures cover every phase of it.
                    time.sleep(max(interval, google.MIN_WRITE_SPACING_SECONDS) * ((n * 0.37) % 1))
                    submitted = time.monotonic()
                    assert api.post("/api/v1/jobs", json=JOB).status_code in (200, 201)
                    cw_at = _wait(_cloudwatch_value_seen, proxy, submitted, float(n), interval + 10)
                    gcp_at = _wait(_google_value_seen, monitoring, submitted, n, interval + 15)
                    cw_lat.append(cw_at - submitted)
                    gcp_lat.append(gcp_at - submitted)
        finally:
            stop.set()
            loop.join(timeout=interval + 5)
            publisher.close()
            server.stop()
    for name, values in (("CloudWatch", cw_lat), ("Cloud Monitoring", gcp_lat)):
        print(
            f"{interval:>8g}s {name:>17} {len(values):>7} {statistics.mean(values):>8.2f} "
            f"{statistics.median(values):>8.2f} {max(values):>8.2f}"
        )


def main() -> None:
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    # moto's web server logs every request; the figures are what this prints.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    proxy = FaultProxy(f"http://127.0.0.1:{moto_port}")
    proxy.start()
    monitoring = MonitoringServer()
    monitoring.start()
    try:
        calls_per_round(proxy, monitoring)
        print()
        print("Latency from a job submitted to the real fleet server to its size reaching the API (seconds)")
        print(f"{'interval':>9} {'backend':>17} {'samples':>7} {'mean':>8} {'median':>8} {'max':>8}")
        latency(proxy, monitoring, interval=1.0, samples=6)
        latency(proxy, monitoring, interval=5.0, samples=4)
    finally:
        monitoring.stop()
        proxy.stop()
        moto.stop()


if __name__ == "__main__":
    main()
