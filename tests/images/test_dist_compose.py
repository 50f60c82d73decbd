"""dist/images/docker-compose.yml run as docs/executor.md shows: `docker-compose up -d` with Debian's docker-compose
1.29 on the images of dist/images/import.sh, then PostgreSQL healthy, `fleet server` on it answering on port 3080,
a job submitted through the job API, its queue's size on metrics-publisher's Prometheus port 9101 (also after the
server's restart), a wrong token refused.

The compose file needs what the other image tests' engine lacks (a bridge, a user-defined network with its DNS,
published ports), so this test starts a dockerd of its own, with bridge and iptables, inside a network namespace it
creates: the bridge, the NAT rules and the published ports are that namespace's, and the HTTP checks run there.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.images.conftest import Dist, import_dist_images
from tests.support.docker_engine import NETNS_BRIDGE_IP, DockerEngine, start_docker_engine
from tests.support.netns import NetNamespace, create_netns

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

TOOLS = (
    ("docker-compose", "docker-compose"),
    ("docker", "docker.io"),
    ("dockerd", "docker.io"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("iptables", "iptables"),
    ("curl", "curl"),
)
# Every wait is on an event (a health state, an HTTP answer, a metric's value); the bound only catches a hang,
# however busy the machine (the PEX unpacks itself on the containers' first start).
DEADLINE = 600
SERVICES = ("postgres", "fleet-server", "metrics-publisher")
MAX_RESTARTS = 3
# Published ports of the compose file, as seen inside the namespace.
SERVER = "http://127.0.0.1:3080"
PUBLISHER = "http://127.0.0.1:9101"
T = TypeVar("T")


@dataclass
class Stack:
    ns: NetNamespace
    engine: DockerEngine
    compose_file: Path
    project: str
    env: dict[str, str]

    @property
    def api_token(self) -> str:
        return self.env["FLEET_API_TOKEN"]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "-f", str(self.compose_file), "-p", self.project, *args]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def state(self) -> str:
        """`docker-compose ps` and each service's last log lines: what a failure message shows."""
        ps = self.compose("ps", timeout=120)
        parts = [f"docker-compose ps:\n{ps.stdout}{ps.stderr}"]
        for service in SERVICES:
            logs = self.compose("logs", "--no-color", "--tail", "40", service, timeout=120)
            parts.append(f"docker-compose logs {service}:\n{logs.stdout[-4000:]}{logs.stderr}")
        return "\n".join(parts)

    def inspect(self, service: str, template: str) -> str:
        ids = self.compose("ps", "-q", service, timeout=120).stdout.split()
        if not ids:
            return "no container"
        done = subprocess.run(
            ["docker", "--host", self.engine.host, "inspect", "-f", template, ids[0]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout.strip() or done.stderr.strip()

    def crash_looping(self) -> str | None:
        """The first service docker has restarted MAX_RESTARTS times (its `restart: always` would hide a crash)."""
        for service in SERVICES:
            restarts = self.inspect(service, "{{.RestartCount}}")
            if restarts.isdigit() and int(restarts) >= MAX_RESTARTS:
                return f"{service} restarted {restarts} times"
        return None

    def http(self, method: str, url: str, token: str | None = None, body: object = None) -> tuple[int, str]:
        """An HTTP request from inside the namespace; (0, curl's error) when nothing answers."""
        argv = ["curl", "-sS", "-m", "30", "-X", method, "-o", "-", "-w", "\n%{http_code}", url]
        # The token goes in on stdin (`-H @-`), never on a command line other processes can read.
        headers = f"Authorization: Bearer {token}\n" if token is not None else None
        if headers is not None:
            argv += ["-H", "@-"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        done = self.ns.run(*argv, timeout=60, stdin=headers)
        if done.returncode != 0:
            return 0, done.stderr.strip()
        text, _, code = done.stdout.rpartition("\n")
        return int(code), text


def wait_for(stack: Stack, what: str, check: Callable[[], T | None]) -> T:
    """check()'s first answer other than None, polled until DEADLINE; else a failure with the services' state
    (at once when a service keeps crashing)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found is not None:
            return found
        crashing = stack.crash_looping()
        if crashing is not None:
            raise AssertionError(f"{what}: {crashing}\n{stack.state()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE} s\n{stack.state()}")
        time.sleep(1)


@pytest.fixture(scope="session")
def tools() -> None:
    """Checked before `dist` is built (minutes): a missing one fails at once, with one line."""
    for tool, package in TOOLS:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found; apt-get install -y {package}", pytrace=False)


@pytest.fixture(scope="module")
def stack(tools: None, dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ns = create_netns("efl-compose")
    engine: DockerEngine | None = None
    stack: Stack | None = None
    try:
        engine = start_docker_engine(netns=ns, busybox=False)
        import_dist_images(engine, dist)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(tmp_path_factory.mktemp("compose-home")),
            "DOCKER_HOST": engine.host,
            # What docs/executor.md says to run: openssl rand -hex 32.
            "FLEET_API_TOKEN": secrets.token_hex(32),
            "FLEET_EXECUTORS_ACCESS_TOKEN": secrets.token_hex(32),
        }
        project = f"efl-compose-{secrets.token_hex(3)}"
        stack = Stack(ns, engine, dist.path / "images" / "docker-compose.yml", project, env)
        up = stack.compose("up", "-d")
        assert up.returncode == 0, f"docker-compose up -d failed ({up.returncode}):\n{up.stderr}\n{stack.state()}"
        yield stack
    finally:
        try:
            if stack is not None:
                down = stack.compose("down", "-v", "--timeout", "30")
                assert down.returncode == 0, f"docker-compose down -v failed:\n{down.stdout}{down.stderr}"
        finally:
            if engine is not None:
                engine.stop()
            ns.delete()


def wait_until(stack: Stack, what: str, condition: Callable[[], bool]) -> None:
    wait_for(stack, what, lambda: True if condition() else None)


def healthz(stack: Stack) -> dict[str, str] | None:
    code, text = stack.http("GET", f"{SERVER}/healthz")
    return dict(json.loads(text)) if code == 200 else None


def queue_size(stack: Stack, queue: str = "batches") -> float | None:
    """src_executors_queue_size of the queue on the publisher's Prometheus endpoint; None before it has one."""
    code, text = stack.http("GET", f"{PUBLISHER}/metrics")
    if code != 200:
        return None
    found = re.search(rf'^src_executors_queue_size{{environment="prod",queueName="{queue}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def submit(stack: Stack) -> int:
    job = {"queue": "batches", "dockerSteps": [{"key": "hello", "image": "alpine", "commands": ["echo hello"]}]}
    code, text = stack.http("POST", f"{SERVER}/api/v1/jobs", stack.api_token, job)
    assert code == 201, (code, text)
    job_id = int(json.loads(text)["id"])
    code, text = stack.http("GET", f"{SERVER}/api/v1/jobs/{job_id}", stack.api_token)
    assert code == 200 and json.loads(text)["state"] == "queued", (code, text)
    return job_id


def test_postgres_is_healthy_and_the_server_runs_on_it(stack: Stack) -> None:
    wait_until(stack, "postgres healthy", lambda: stack.inspect("postgres", "{{.State.Health.Status}}") == "healthy")
    # A UTF8 cluster: initdb's default without a locale would be SQL_ASCII.
    encoding = stack.compose("exec", "-T", "postgres", "psql", "-U", "fleet", "-Atc", "SHOW server_encoding")
    assert encoding.stdout.strip() == "UTF8", encoding.stdout + encoding.stderr
    assert wait_for(stack, "fleet server's /healthz on port 3080", lambda: healthz(stack)) == {
        "status": "ok",
        "database": "postgresql",
    }


def test_a_wrong_api_token_is_refused(stack: Stack) -> None:
    url = f"{SERVER}/api/v1/queues"
    wait_until(stack, "the job API", lambda: stack.http("GET", url, stack.api_token)[0] == 200)
    for token in ("0" * 64, None):
        code, text = stack.http("GET", url, token)
        assert code == 401, (token, code, text)
        code, text = stack.http("POST", f"{SERVER}/api/v1/jobs", token, {"queue": "batches"})
        assert code == 401, (token, code, text)


def test_a_submitted_job_shows_in_the_api_and_in_the_publishers_queue_size(stack: Stack) -> None:
    # The publisher reads the queues from the server over the project's network: 0 before any job.
    assert wait_for(stack, "queue size of batches on port 9101", lambda: queue_size(stack)) == 0
    submit(stack)
    # No executor takes it: the queue's size becomes 1 at one of the publisher's next rounds.
    wait_until(stack, "queue size 1 on port 9101", lambda: queue_size(stack) == 1)


def test_after_a_server_restart_the_queue_is_kept_and_the_publisher_reads_it(stack: Stack) -> None:
    before = wait_for(stack, "queue size of batches on port 9101", lambda: queue_size(stack))
    restarted = stack.compose("restart", "fleet-server")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_for(stack, "fleet server's /healthz after its restart", lambda: healthz(stack))
    submit(stack)
    # The jobs are in PostgreSQL, and the publisher reaches the restarted server (a sidecar sharing the old
    # server's network namespace would not: it stays in the old one).
    wait_until(stack, f"queue size {before + 1:.0f} after the restart", lambda: queue_size(stack) == before + 1)


def test_the_bridge_and_its_nat_rules_are_the_namespaces_own(stack: Stack) -> None:
    bridge = stack.ns.run("ip", "-br", "addr", "show", "docker0")
    assert NETNS_BRIDGE_IP in bridge.stdout, bridge.stdout + bridge.stderr
    # The published ports are DNAT rules of dockerd's iptables (Debian: iptables-nft), in the namespace.
    nat = stack.ns.run("iptables", "-t", "nat", "-S", "DOCKER")
    assert nat.returncode == 0 and "--dport 3080" in nat.stdout and "--dport 9101" in nat.stdout, (
        nat.stdout + nat.stderr
    )
    # A read-only look at the host's own network: the bridge's address is not there.
    host = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, timeout=60)
    assert NETNS_BRIDGE_IP not in host.stdout, host.stdout
