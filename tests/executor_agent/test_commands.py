"""`executor validate`, `install`, `test-vm` and the metrics endpoint, run as a user would run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from executor_agent import metrics
from tests.executor_agent.helpers import agent_env, make_repo, register_repo
from tests.support.docker_engine import DockerEngine
from tests.support.fleet_server import FleetServer
from tests.support.postgres import free_port


def executor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor_agent", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(fleet_server: FleetServer, docker_engine: DockerEngine, tmp_path: Path) -> dict[str, str]:
    return agent_env(fleet_server, tmp_path, docker_engine.host)


@pytest.mark.docker
def test_validate_all_good(env: dict[str, str]) -> None:
    result = executor(env, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("✓ configuration: queues batches, runtime docker")
    assert any(line.startswith("✓ git 2.") and "(>= 2.31)" in line for line in lines)
    assert any(line.startswith("✓ runtime docker: Docker Engine") for line in lines)
    assert lines[-1].startswith("✓ server http://127.0.0.1:") and lines[-1].endswith("executor secret accepted")


@pytest.mark.docker
def test_validate_names_what_to_fix(env: dict[str, str]) -> None:
    wrong_secret = executor({**env, "EXECUTOR_FRONTEND_PASSWORD": "not-the-secret-not-the-secret"}, "validate")
    assert wrong_secret.returncode == 1
    assert (
        "rejected the executor secret (HTTP 401); check that EXECUTOR_FRONTEND_PASSWORD equals the server's "
        "FLEET_EXECUTORS_ACCESS_TOKEN" in wrong_secret.stdout
    )
    unreachable = executor({**env, "EXECUTOR_FRONTEND_URL": f"http://127.0.0.1:{free_port()}"}, "validate")
    assert unreachable.returncode == 1
    assert "unreachable" in unreachable.stdout and "check EXECUTOR_FRONTEND_URL" in unreachable.stdout
    no_docker = executor({**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "validate")
    assert no_docker.returncode == 1
    assert "✗ runtime docker: Docker Engine at unix:///nonexistent/docker.sock does not answer" in no_docker.stdout
    mirror = executor({**env, "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://127.0.0.1:5000"}, "validate")
    assert mirror.returncode == 1
    assert "✗ registry mirror: EXECUTOR_DOCKER_REGISTRY_MIRROR_URL=http://127.0.0.1:5000 is not among" in mirror.stdout
    firecracker = executor({**env, "EXECUTOR_USE_FIRECRACKER": "true"}, "validate")
    assert firecracker.returncode == 1
    assert "✗ runtime firecracker: this build of the executor has no Firecracker runtime" in firecracker.stdout


@pytest.mark.docker
def test_install_dry_run_changes_nothing_and_docker_config_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    daemon_json = tmp_path / "etc-docker" / "daemon.json"
    env = {
        **env,
        "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://10.0.1.4:5000",
        "EXECUTOR_DOCKER_DAEMON_JSON": str(daemon_json),
    }
    dry = executor(env, "install", "all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "✓ docker: already done: install Docker Engine from the distribution" in dry.stdout
    assert f"would docker-config: add registry mirror http://10.0.1.4:5000 to {daemon_json}" in dry.stdout
    assert "iptables -A EXECUTOR-FLEET -d 169.254.169.254/32 -j DROP" in dry.stdout
    assert "iptables -A EXECUTOR-FLEET -d 10.0.1.4/32 -p tcp --dport 5000 -j RETURN" in dry.stdout
    assert not daemon_json.exists()

    daemon_json.parent.mkdir()
    daemon_json.write_text(json.dumps({"log-driver": "json-file"}))
    first = executor(env, "install", "docker-config")
    assert first.returncode == 0 and "✓ docker-config: add registry mirror" in first.stdout
    written = json.loads(daemon_json.read_text())
    assert written == {"log-driver": "json-file", "registry-mirrors": ["http://10.0.1.4:5000"]}
    again = executor(env, "install", "docker-config")
    assert "already done" in again.stdout
    assert json.loads(daemon_json.read_text()) == written

    unknown = executor(env, "install", "kvm")
    assert unknown.returncode == 2 and "unknown component(s) kvm" in unknown.stderr


@pytest.mark.docker
def test_test_vm_clones_and_prints_how_to_attach(
    env: dict[str, str], fleet_server: FleetServer, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    sha = make_repo(tmp_path / "origin", {"README": "hello from the repo\n"})
    register_repo(fleet_server, "github.com/acme/tools", tmp_path / "origin")
    env = {**env, "EXECUTOR_TEST_VM_IMAGE": "busybox"}
    result = executor(env, "test-vm", "--repo", "github.com/acme/tools", "--revision", sha)
    assert result.returncode == 0, result.stderr
    assert "Attach to it with:" in result.stdout
    attach = result.stdout.splitlines()[-1].strip()
    assert attach.startswith(f"DOCKER_HOST={docker_engine.host} docker exec -it ")
    name = attach.split()[-2]
    client = docker_engine.client()
    try:
        sandbox = client.containers.get(name)
        assert sandbox.status == "running"
        assert sandbox.exec_run(["cat", "/data/README"]).output == b"hello from the repo\n"
        sandbox.remove(force=True)
        only_name = executor(env, "test-vm", "--name-only")
        assert only_name.returncode == 0
        client.containers.get(only_name.stdout.strip()).remove(force=True)
    finally:
        client.close()


@pytest.fixture
def node_exporter() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"node_cpu_seconds_total 42\n" if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_metrics_endpoints(node_exporter: str) -> None:
    metrics.processor_total.labels("batches").inc()
    metrics.observe_api("dequeue", 0.01, error=False)
    server = metrics.MetricsServer("127.0.0.1:0", node_exporter)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/metrics", "/proxy?module=executor"):
            text = httpx.get(base + path).text
            assert 'src_executor_processor_total{queue="batches"}' in text
            assert 'src_apiworker_apiclient_queue_total{op="dequeue"}' in text
            for family in ("src_executor_processor_duration_seconds", "src_apiworker_command_total"):
                assert f"# TYPE {family}" in text
        assert httpx.get(base + "/proxy?module=node").text == "node_cpu_seconds_total 42\n"
    finally:
        server.stop()
    bare = metrics.MetricsServer("127.0.0.1:0", "")
    bare.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{bare.port}/proxy?module=node")
        assert reply.status_code == 404 and "NODE_EXPORTER_URL is not set" in reply.text
    finally:
        bare.stop()


def test_install_iptables_rules_for_real_in_a_private_network_namespace(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("iptables") is None:
        pytest.fail("needs unshare (util-linux) and iptables: apt-get install -y util-linux iptables")
    env = {
        "PATH": os.environ["PATH"],
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "unused-here-unused-here",
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://10.0.1.4:5000",
    }
    install = f"{sys.executable} -m executor_agent install iptables-rules"
    # A fresh network namespace has its own, empty iptables: the host's rules are never touched.
    # DOCKER-USER is the chain dockerd creates; here the test stands in for dockerd.
    script = f"iptables -N DOCKER-USER && {install} && echo ==== && {install} && echo ==== && iptables -S"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    first, second, rules = result.stdout.split("====\n")
    assert "✓ iptables-rules: iptables -A EXECUTOR-FLEET -d 169.254.169.254/32 -j DROP" in first
    assert "already done" not in first
    assert all(line.startswith("✓ iptables-rules: already done") for line in second.splitlines())
    assert "-A DOCKER-USER -i docker0 -j EXECUTOR-FLEET" in rules
    assert "-A EXECUTOR-FLEET -d 10.0.1.4/32 -p tcp -m tcp --dport 5000 -j RETURN" in rules
    assert rules.index("--dport 5000 -j RETURN") < rules.index("-d 10.0.0.0/8 -j DROP"), "mirror allowed first"
    assert rules.count("-A EXECUTOR-FLEET") == 8
