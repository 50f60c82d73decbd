"""A real Prometheus (Debian's package) scrapes `fleet server`'s /metrics and sees the queue sizes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.fleet_server import FleetServer
from tests.support.postgres import free_port


def test_prometheus_scrapes_queue_size(fleet_server: FleetServer, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if not binary:
        pytest.fail("prometheus not found; install it with: apt-get install -y prometheus (or run `make test`)")
    with fleet_server.api() as api:
        for _ in range(3):
            api.post("/api/v1/jobs", json={"queue": "codeintel", "dockerSteps": [{"image": "b", "commands": ["x"]}]})
    target = fleet_server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: fleet\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        value = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and value is None:
            time.sleep(0.5)
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'fleet_queue_size{queue="codeintel"}'}
                )
            except httpx.HTTPError:
                continue
            result = r.json().get("data", {}).get("result", [])
            if result:
                value = float(result[0]["value"][1])
        assert value == 3.0
    finally:
        proc.terminate()
        proc.wait(10)
