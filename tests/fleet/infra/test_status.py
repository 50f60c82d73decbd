"""`fleet status` against a real fleet server, a moto server (AWS) and a Compute REST stand-in (Google)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from typer.testing import CliRunner

from fleet.cli.main import _register, app
from tests.fleet.infra.conftest import AWS_REGION, ComputeStandIn, add_queues
from tests.support.fleet_server import FleetServer

_register()
runner = CliRunner()
STEP = {"image": "busybox", "commands": ["true"]}


def status(config: Path, server: FleetServer, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["status", "--config", str(config), *extra], env={"FLEET_API_TOKEN": server.api_token, "FLEET_URL": None}
    )
    return result.exit_code, result.stdout, result.stderr


def fleet_toml(tmp_path: Path, server: FleetServer, cloud: str, pools: str, extra: str = "") -> Path:
    region, zone = (AWS_REGION, f"{AWS_REGION}a") if cloud == "aws" else ("us-central1", "us-central1-a")
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
cloud = "{cloud}"
name = "prod"
region = "{region}"
zone = "{zone}"
fleet_url = "{server.url}"
executor_secret_env = "TEST_EXECUTOR_SECRET"
executor_image = "ami-12c6146b"
{extra}
{pools}
"""
    )
    return path


def submit(server: FleetServer, queue: str, count: int) -> None:
    with server.api() as api:
        for _ in range(count):
            r = api.post("/api/v1/jobs", json={"queue": queue, "dockerSteps": [STEP]})
            assert r.status_code == 201, r.text


def executor_takes_one(server: FleetServer, queue: str, name: str = "exec-1") -> None:
    with server.executor() as ex:
        job = ex.post(f"/.executors/queue/{queue}/dequeue", json={"executorName": name}).json()
        r = ex.post(
            f"/.executors/queue/{queue}/heartbeat",
            json={"executorName": name, "jobIds": [str(job["id"])], "os": "linux", "architecture": "amd64"},
        )
        assert r.status_code == 200, r.text


def make_asg(name: str, desired: int, max_size: int = 10) -> None:
    client = boto3.client("autoscaling", region_name=AWS_REGION)
    client.create_launch_configuration(
        LaunchConfigurationName=f"{name}-lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    client.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName=f"{name}-lc",
        MinSize=0,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{AWS_REGION}a"],
    )


POOLS = """
[[pools]]
name = "batches"
queue = "batches"
machine_type = "c5n.metal"
max_replicas = 5
jobs_per_instance_scaling = 2

[[pools]]
name = "codeintel"
queue = "codeintel"
machine_type = "c5n.metal"
max_replicas = 2
jobs_per_instance_scaling = 1
"""


def pool(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in doc["pools"] if p["pool"] == name)


def test_aws_status_reads_the_group_and_the_server(aws_env: str, server: FleetServer, tmp_path: Path) -> None:
    # batches: 3 jobs, one taken by a live executor -> size 3, policy ceil(3/2) = 2 = the group's desired 2.
    # codeintel: 4 jobs, max 2 at 1 job per instance -> group at max while the queue needs 4: a warning;
    # its 2 in-service instances have no executor -> another warning.
    submit(server, "batches", 3)
    executor_takes_one(server, "batches")
    submit(server, "codeintel", 4)
    make_asg("prod-executors-batches", desired=2)
    make_asg("prod-executors-codeintel", desired=2, max_size=2)
    config = fleet_toml(tmp_path, server, "aws", POOLS)

    code, out, err = status(config, server, "--json")
    assert code == 0, err
    doc = json.loads(out)
    batches, codeintel = pool(doc, "batches"), pool(doc, "codeintel")
    assert (batches["queued"], batches["processing"], batches["size"], batches["policyWants"]) == (2, 1, 3, 2)
    assert batches["group"] == {
        "name": "prod-executors-batches",
        "found": True,
        "desired": 2,
        "inService": 2,
        "pending": 0,
        "other": 0,
    }
    assert (batches["executorsSeen"], batches["executorsRecent"], batches["executorsHealthy"]) == (1, 1, 1)
    assert batches["oldestQueuedAgeSeconds"] is not None
    assert batches["warnings"] == []
    assert codeintel["size"] == 4 and codeintel["group"]["desired"] == 2
    assert any("raise max_replicas" in w for w in codeintel["warnings"])
    assert any("no executor seen for codeintel" in w for w in codeintel["warnings"])

    code, out, err = status(config, server)
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["pool", "queue", "size"]
    assert out.splitlines()[1].split()[:3] == ["batches", "batches", "3"]
    assert "warning: codeintel:" in out


def test_aws_group_missing_is_a_warning(aws_env: str, server: FleetServer, tmp_path: Path) -> None:
    pools = '[[pools]]\nname = "gone"\nqueue = "batches"\nmachine_type = "m5.large"\n'
    code, out, err = status(fleet_toml(tmp_path, server, "aws", pools), server, "--json")
    assert code == 0, err
    (gone,) = json.loads(out)["pools"]
    assert gone["group"]["found"] is False
    assert "prod-executors-gone not found: run `fleet infra apply`" in gone["warnings"][0]


def test_google_status_reads_the_regional_mig(compute_api: ComputeStandIn, server: FleetServer, tmp_path: Path) -> None:
    compute_api.add_group("acme", "us-central1", "prod-executors-batches", target_size=3, none=2, creating=1)
    add_queues(server, "google-q")
    submit(server, "google-q", 5)
    pools = (
        '[[pools]]\nname = "batches"\nqueue = "google-q"\nmachine_type = "n2-standard-8"\n'
        "jobs_per_instance_scaling = 2\nmax_replicas = 4\n"
    )
    extra = f'project = "acme"\ncompute_api_endpoint = "{compute_api.url}"'
    code, out, err = status(fleet_toml(tmp_path, server, "google", pools, extra), server, "--json")
    assert code == 0, err
    (batches,) = json.loads(out)["pools"]
    assert batches["group"] == {
        "name": "prod-executors-batches",
        "found": True,
        "desired": 3,
        "inService": 2,
        "pending": 1,
        "other": 0,
    }
    assert batches["policyWants"] == 3  # ceil(5 / 2)
    assert any("no executor seen for google-q" in w for w in batches["warnings"])
    assert compute_api.requests == [
        "/compute/v1/projects/acme/regions/us-central1/instanceGroupManagers/prod-executors-batches"
    ]


def test_google_missing_group(compute_api: ComputeStandIn, server: FleetServer, tmp_path: Path) -> None:
    pools = '[[pools]]\nname = "batches"\nqueue = "batches"\nmachine_type = "n2-standard-8"\n'
    extra = f'project = "acme"\ncompute_api_endpoint = "{compute_api.url}"'
    code, out, err = status(fleet_toml(tmp_path, server, "google", pools, extra), server, "--json")
    assert code == 0, err
    assert json.loads(out)["pools"][0]["group"]["found"] is False


def test_status_needs_the_api_token(server: FleetServer, tmp_path: Path) -> None:
    config = fleet_toml(tmp_path, server, "aws", POOLS)
    result = runner.invoke(app, ["status", "--config", str(config)], env={"FLEET_API_TOKEN": None})
    assert result.exit_code == 1
    assert "FLEET_API_TOKEN is required" in result.stderr
    result = runner.invoke(app, ["status", "--config", str(config)], env={"FLEET_API_TOKEN": "wrong"})
    assert result.exit_code == 1 and "refused FLEET_API_TOKEN (401)" in result.stderr
