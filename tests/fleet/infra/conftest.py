"""Fixtures for `fleet status` and `fleet infra`: a moto server and a Compute REST stand-in, both on loopback."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from tests.support.fleet_server import FleetServer, start_fleet_server

AWS_REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (and the Terraform AWS provider) at the moto server; the credentials are moto's dummies."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url


class ComputeStandIn:
    """Answers the Compute Engine REST path the real `RegionInstanceGroupManagersClient.get` calls.

    Google offers no emulator for Compute Engine; replies are the real `InstanceGroupManager` message as JSON.
    """

    PATH = re.compile(r"^/compute/v1/projects/([^/]+)/regions/([^/]+)/instanceGroupManagers/([^/?]+)")

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stand_in.requests.append(self.path)
                match = stand_in.PATH.match(self.path)
                body = stand_in.groups.get(match.groups()) if match else None  # type: ignore[arg-type]
                if body is None:
                    self._send(404, {"error": {"code": 404, "message": "The resource was not found", "errors": []}})
                else:
                    self._send(200, body)

            def _send(self, code: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_group(self, project: str, region: str, name: str, target_size: int, **actions: int) -> None:
        from google.cloud import compute_v1

        mig = compute_v1.InstanceGroupManager(
            name=name,
            target_size=target_size,
            region=f"https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}",
            current_actions=compute_v1.InstanceGroupManagerActionsSummary(**actions),
        )
        self.groups[(project, region, name)] = json.loads(compute_v1.InstanceGroupManager.to_json(mig))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def compute_api() -> Iterator[ComputeStandIn]:
    stand_in = ComputeStandIn()
    yield stand_in
    stand_in.stop()


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    """A real fleet server with the production stall timeout, so a job taken by a test executor stays processing.

    Shared by a module's tests; each test makes its own queues (`add_queues`) so they do not see each other's jobs.
    """
    s = start_fleet_server(tmp_path_factory.mktemp("fleet"))
    yield s
    s.stop()


def add_queues(server: FleetServer, *names: str) -> None:
    with server.api() as api:
        for name in names:
            r = api.post("/api/v1/queues", json={"name": name})
            assert r.status_code == 201, r.text
