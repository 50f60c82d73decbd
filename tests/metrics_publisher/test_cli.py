"""The `metrics-publisher` program as operators run it: exit codes, --once, --dry-run, /metrics, /healthz, SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.auth import jwt as google_jwt

from tests.metrics_publisher.common import published, service_account_key
from tests.metrics_publisher.standins import FleetStandIn, MonitoringServer, free_port, self_signed_certificate

PROGRAM = Path(sys.executable).parent / "metrics-publisher"


def program_env(fleet: FleetStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECUTOR_", "AWS_", "FLEET_"))}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        FLEET_URL=fleet.url,
        FLEET_API_TOKEN=fleet.token,
        EXECUTOR_METRIC_ENVIRONMENT_LABEL="prod",
        SRC_LOG_LEVEL="info",
    )
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if not PROGRAM.exists():
        pytest.fail(f"{PROGRAM} is missing: install the project with `pip install -e .` into .venv")
    return subprocess.run([str(PROGRAM), *args], env=env, capture_output=True, text=True, timeout=60)


def test_help_lists_every_variable(fleet_standin: FleetStandIn) -> None:
    result = run(program_env(fleet_standin), "--help")
    assert result.returncode == 0
    for name in ("EXECUTOR_ALLOCATIONS", "EXECUTOR_METRIC_GCP_API_ENDPOINT", "EXECUTOR_METRIC_QUEUE_GROUPS", "--once"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"EXECUTOR_METRIC_AWS_NAMESPACE": "sourcegraph-executor"}, "EXECUTOR_METRIC_AWS_REGION"),
        (
            {
                "EXECUTOR_METRIC_GCP_PROJECT_ID": "p",
                "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE": "/nonexistent/key.json",
            },
            "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE",
        ),
        ({"EXECUTOR_ALLOCATIONS": '{"batches": {"aws": 0.6, "gcp": 0.6}}'}, "EXECUTOR_ALLOCATIONS"),
    ],
)
def test_bad_configuration_exits_2_before_anything_is_sent(
    fleet_standin: FleetStandIn, monitoring: MonitoringServer, extra: dict[str, str], variable: str
) -> None:
    env = program_env(fleet_standin, EXECUTOR_METRIC_GCP_API_ENDPOINT=monitoring.endpoint, **extra)
    result = run(env, "--once")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"metrics-publisher: {variable}:"), result.stderr
    assert fleet_standin.hits == 0 and monitoring.attempts == 0


def test_once_publishes_to_both_clouds_with_their_shares(
    fleet_standin: FleetStandIn, monitoring: MonitoringServer, moto_url: str, namespace: str
) -> None:
    import boto3

    fleet_standin.set("batches", queued=3, processing=1)
    env = program_env(
        fleet_standin,
        AWS_ENDPOINT_URL=moto_url,
        EXECUTOR_METRIC_ENVIRONMENT_LABEL=namespace,
        EXECUTOR_METRIC_AWS_NAMESPACE=namespace,
        EXECUTOR_METRIC_AWS_REGION="us-east-1",
        EXECUTOR_METRIC_AWS_ACCESS_KEY_ID="AKIDTEST",
        EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY="secret",
        EXECUTOR_METRIC_GCP_PROJECT_ID="acme",
        EXECUTOR_METRIC_GCP_API_ENDPOINT=monitoring.endpoint,
        EXECUTOR_ALLOCATIONS='{"batches": {"aws": 0.75, "gcp": 0.25}}',
    )
    result = run(env, "--once")
    assert result.returncode == 0, result.stderr
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="a", aws_secret_access_key="b"
    )
    assert published(client, namespace, "batches") == [3.0]
    assert len(monitoring.requests) == 1
    assert monitoring.requests[0].name == "projects/acme"
    assert monitoring.values(monitoring.requests[0]) == {"batches": 1}


def test_dry_run_prints_and_sends_nothing(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> None:
    fleet_standin.set("batches", queued=2)
    fleet_standin.set("codeintel", queued=1)
    env = program_env(
        fleet_standin,
        EXECUTOR_METRIC_GCP_PROJECT_ID="acme",
        EXECUTOR_METRIC_GCP_API_ENDPOINT=monitoring.endpoint,
        EXECUTOR_METRIC_QUEUE_GROUPS="codeintel,batches",
    )
    result = run(env, "--once", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all("would publish to cloud-monitoring project=acme" in line for line in lines)
    assert [line.rsplit(" ", 2)[-2:] for line in lines] == [
        ["queueName=batches", "value=2"],
        ["queueName=batches_codeintel", "value=3"],
        ["queueName=codeintel", "value=1"],
    ]
    assert monitoring.attempts == 0


def test_once_fails_with_1_when_the_fleet_server_is_down(fleet_standin: FleetStandIn) -> None:
    fleet_standin.stop()
    result = run(program_env(fleet_standin), "--once", "--dry-run")
    assert result.returncode == 1
    assert "cannot reach the fleet server" in result.stderr


@pytest.fixture
def running(fleet_standin: FleetStandIn, monitoring: MonitoringServer) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    env = program_env(
        fleet_standin,
        EXECUTOR_METRIC_PUBLISH_INTERVAL="1s",
        EXECUTOR_METRIC_PROMETHEUS_ADDR=f"127.0.0.1:{port}",
        EXECUTOR_METRIC_GCP_PROJECT_ID="acme",
        EXECUTOR_METRIC_GCP_API_ENDPOINT=monitoring.endpoint,
    )
    proc = subprocess.Popen([str(PROGRAM)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_for(predicate: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if predicate():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")


def gauge(base: str, queue: str) -> float | None:
    text = httpx.get(f"{base}/metrics", timeout=2).text
    match = re.search(rf'src_executors_queue_size\{{environment="prod",queueName="{queue}"\}} (\S+)', text)
    return float(match.group(1)) if match else None


@pytest.mark.slow
def test_long_running_serves_metrics_health_and_stops_on_sigterm(
    running: tuple[subprocess.Popen[str], str], fleet_standin: FleetStandIn, monitoring: MonitoringServer
) -> None:
    proc, base = running
    fleet_standin.set("batches", queued=2)
    wait_for(lambda: gauge(base, "batches") == 2.0, 120)
    fleet_standin.set("batches", queued=5, processing=1)
    # A change shows at the next round (speed is bench/'s business: here only that it shows).
    wait_for(lambda: gauge(base, "batches") == 6.0, 120)
    assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    assert "executor_metric_publisher_rounds_total" in httpx.get(f"{base}/metrics", timeout=2).text
    assert len(monitoring.requests) >= 1

    fleet_standin.stop()
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=10).status_code == 503, 120)
    fleet_standin.start()
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=10).status_code == 200, 120)

    proc.send_signal(signal.SIGTERM)  # one signal ends it, with exit 0 (the bound only catches a hang)
    assert proc.wait(timeout=120) == 0


def test_service_account_key_over_tls_sends_a_signed_token(fleet_standin: FleetStandIn, tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed_certificate()
    server = MonitoringServer()
    server.start(tls=(key_pem, cert_pem))
    try:
        roots = tmp_path / "roots.pem"
        roots.write_bytes(cert_pem)
        info, public_pem = service_account_key()
        fleet_standin.set("batches", queued=1)
        env = program_env(
            fleet_standin,
            EXECUTOR_METRIC_GCP_PROJECT_ID="acme-prod",
            EXECUTOR_METRIC_GCP_API_ENDPOINT=f"localhost:{server.port}",
            EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT=base64.b64encode(
                json.dumps(info).encode()
            ).decode(),
            # The loopback server's certificate is trusted the way a private CA would be.
            GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(roots),
        )
        result = run(env, "--once")
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == 1 and server.requests[0].name == "projects/acme-prod"
        authorization = server.metadata[0]["authorization"]
        assert authorization.startswith("Bearer ")
        # The real client signs its own token with the key (no token server involved): check the signature.
        claims = google_jwt.decode(authorization.removeprefix("Bearer "), certs=public_pem, verify=True)
        assert claims["iss"] == info["client_email"]
    finally:
        server.stop()
