"""Runs a real `fleet server` (uvicorn on loopback, in a subprocess) for tests that go through HTTP."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.postgres import free_port


@dataclass
class FleetServer:
    url: str
    executor_token: str
    api_token: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.api_token}"}, timeout=30)

    def executor(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token-executor {self.executor_token}"}, timeout=60
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_fleet_server(workdir: Path, database_url: str | None = None, **settings: str) -> FleetServer:
    """Start `fleet server`; extra keyword settings become FLEET_<NAME> variables (e.g. stalled_job_seconds="2")."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database_url = database_url or f"sqlite:///{workdir}/fleet.db"
    executor_token = secrets.token_hex(16)
    api_token = secrets.token_hex(16)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": database_url,
        "FLEET_HTTP_ADDR": f"127.0.0.1:{port}",
        "FLEET_EXECUTORS_ACCESS_TOKEN": executor_token,
        "FLEET_API_TOKEN": api_token,
        **{f"FLEET_{k.upper()}": str(v) for k, v in settings.items()},
    }
    log_path = workdir / "fleet-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet", "server", "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    server = FleetServer(url, executor_token, api_token, database_url, proc, log_path, env)
    # Waits on events (healthy, or the process exits); the bound only catches a hang, however busy the machine.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fleet server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=10).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"fleet server did not become healthy within 300s:\n{server.log()}")
