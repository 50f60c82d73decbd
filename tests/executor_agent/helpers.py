"""Running the real `executor` program against the real `fleet server`, and reading what the server recorded."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.fleet_server import FleetServer

TERMINAL = ("completed", "errored", "failed", "canceled")


def git(*args: str, cwd: Path) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A git repository with one commit holding these files; returns the commit SHA."""
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    git("add", ".", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def submit(server: FleetServer, queue: str = "batches", **spec: Any) -> int:
    with server.api() as api:
        r = api.post("/api/v1/jobs", json={"queue": queue, **spec})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def job(server: FleetServer, job_id: int) -> dict[str, Any]:
    with server.api() as api:
        r = api.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


def logs(server: FleetServer, job_id: int) -> dict[str, dict[str, Any]]:
    """The job's log entries by key."""
    with server.api() as api:
        r = api.get(f"/api/v1/jobs/{job_id}/logs")
        assert r.status_code == 200, r.text
        return {e["key"]: e for e in r.json()["entries"]}


def wait_state(server: FleetServer, job_id: int, states: tuple[str, ...] = TERMINAL, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = job(server, job_id)
        if record["state"] in states:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {record['state']} after {timeout}s: {record}")
        time.sleep(0.1)


def register_repo(server: FleetServer, name: str, path: Path) -> None:
    with server.api() as api:
        r = api.post("/api/v1/repositories", json={"name": name, "url": str(path)})
        assert r.status_code == 201, r.text


def add_queue(server: FleetServer, name: str, max_retries: int = 0) -> None:
    with server.api() as api:
        r = api.post("/api/v1/queues", json={"name": name, "maxRetries": max_retries, "retryDelaySeconds": 0})
        assert r.status_code == 201, r.text


@dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"executor still running after {timeout}s; log:\n{self.log()[-4000:]}") from None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def agent_env(server: FleetServer, workdir: Path, docker_host: str, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EXECUTOR_FRONTEND_URL": server.url,
        "EXECUTOR_FRONTEND_PASSWORD": server.executor_token,
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "false",
        "EXECUTOR_JOB_MEMORY": "256M",
        "EXECUTOR_JOB_NUM_CPUS": "1",
        "EXECUTOR_WORKSPACE_ROOT": str(workdir / "workspaces"),
        "EXECUTOR_METRICS_ADDR": "127.0.0.1:0",
        "EXECUTOR_QUEUE_LONG_POLL": "2s",
        # The test server's stall time is 3s.
        "EXECUTOR_HEARTBEAT_INTERVAL": "1s",
        "SRC_LOG_LEVEL": "info",
        "DOCKER_HOST": docker_host,
    }
    env.pop("EXECUTOR_QUEUE_NAMES", None)
    env.update(overrides)
    return env


def start_agent(env: dict[str, str], log_path: Path, *args: str) -> AgentProcess:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "executor_agent", *(args or ("run",))], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return AgentProcess(proc, log_path)


def wait_for(what: str, check: Any, timeout: float = 120, interval: float = 0.1) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def step_output(server: FleetServer, job_id: int, key: str) -> str:
    entry = logs(server, job_id).get(key)
    return str(entry.get("out", "")) if entry else ""
