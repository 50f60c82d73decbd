"""`fleet infra` end to end: our AWS modules through Terraform and the real AWS provider, against a moto server.

The `fleet` command runs as a subprocess, as an operator would run it, so Terraform's live output goes through the
real file descriptors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.fleet.infra.conftest import AWS_REGION

# min_replicas is 0: moto hands out subnet addresses in order, so an executor launched at apply time would take
# the Docker mirror's static IP (10.0.1.4) before the mirror instance asks for it.
pytestmark = [pytest.mark.terraform, pytest.mark.timeout(900)]

SECRET = "s3cr3t-executor-token-0123456789"
GROUP = "e2e-executors-batches"


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    """The local provider mirror: the folder above registry.terraform.io holding terraform-provider-aws_*."""
    found = subprocess.run(
        ["find", "/", "-xdev", "-name", "terraform-provider-aws_*", "-path", "*registry.terraform.io*"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout.split()
    if not found:
        pytest.fail(
            "no terraform-provider-aws_* on this machine: run `terraform providers mirror DIR` for hashicorp/aws "
            "and keep DIR on this filesystem"
        )
    path = Path(found[0])
    while path.name != "registry.terraform.io":
        path = path.parent
    return path.parent


def fleet(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        cwd=cwd,
        env=os.environ.copy(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def fleet_dir(tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    monkeypatch.setenv("E2E_EXECUTOR_SECRET", SECRET)
    (tmp_path / "fleet.toml").write_text(
        f"""
cloud = "aws"
name = "e2e"
region = "{AWS_REGION}"
zone = "{AWS_REGION}a"
fleet_url = "http://10.0.0.2:3080"
executor_secret_env = "E2E_EXECUTOR_SECRET"
executor_image = "ami-12c6146b"

[[pools]]
name = "batches"
queue = "batches"
machine_type = "t3.micro"
min_replicas = 0
max_replicas = 3
jobs_per_instance_scaling = 5
"""
    )
    return tmp_path


def asg_names() -> list[str]:
    client = boto3.client("autoscaling", region_name=AWS_REGION)
    return [g["AutoScalingGroupName"] for g in client.describe_auto_scaling_groups()["AutoScalingGroups"]]


@pytest.mark.slow
def test_init_plan_apply_status_output_destroy(fleet_dir: Path, plugin_dir: Path) -> None:
    r = fleet(["infra", "init", "--plugin-dir", str(plugin_dir)], fleet_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Terraform has been successfully initialized" in r.stdout
    workdir = fleet_dir / ".fleet" / "e2e"
    for name in ("main.tf.json", "terraform.tfvars.json"):
        assert SECRET not in (workdir / name).read_text()
    assert json.loads((workdir / "terraform.tfvars.json").read_text())["pools"]["batches"]["max_replicas"] == 3

    r = fleet(["infra", "plan"], fleet_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Plan: 24 to add, 0 to change, 0 to destroy." in r.stdout
    assert "create: " in r.stdout and "1 aws_autoscaling_group" in r.stdout
    assert not (workdir / "fleet.tfplan").exists()  # the plan file holds the secret; it is removed

    r = fleet(["infra", "apply"], fleet_dir, stdin="n\n")
    assert r.returncode == 1 and "Nothing done." in r.stderr
    assert GROUP not in asg_names()

    r = fleet(["infra", "apply", "--yes"], fleet_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Apply complete! Resources: 24 added" in r.stdout
    assert GROUP in asg_names()

    r = fleet(["infra", "status", "--json"], fleet_dir)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["resources"] >= 20
    assert doc["pools"]["batches"]["name"] == GROUP
    assert doc["pools"]["batches"]["found"] is True and doc["pools"]["batches"]["desired"] == 0

    r = fleet(["infra", "output", "--credentials"], fleet_dir)
    assert r.returncode == 0, r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert env["EXECUTOR_METRIC_AWS_ACCESS_KEY_ID"].startswith("AKIA")
    assert len(env["EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY"]) >= 20
    assert env["EXECUTOR_METRIC_AWS_NAMESPACE"] == "sourcegraph-executor"
    assert env["EXECUTOR_METRIC_ENVIRONMENT_LABEL"] == "e2e"
    r = fleet(["infra", "output"], fleet_dir)
    assert "instance_groups = " in r.stdout and env["EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY"] not in r.stdout

    r = fleet(["infra", "destroy", "--yes"], fleet_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Destroy complete!" in r.stdout
    assert GROUP not in asg_names()


def test_terraform_failure_is_reported_and_repairable(fleet_dir: Path, plugin_dir: Path) -> None:
    config = fleet_dir / "fleet.toml"
    good = config.read_text()
    config.write_text(good.replace('executor_image = "ami-12c6146b"', 'executor_image = "ubuntu-22.04"'))
    assert fleet(["infra", "init", "--plugin-dir", str(plugin_dir)], fleet_dir).returncode == 0

    r = fleet(["infra", "plan"], fleet_dir)
    assert r.returncode == 1
    assert "ami: expected an AMI id like ami-0123456789abcdef0." in r.stdout + r.stderr  # the module's own check
    assert "error: terraform plan failed (exit 1): fix the error above and re-run" in r.stderr

    config.write_text(good)
    r = fleet(["infra", "plan"], fleet_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Plan: 24 to add" in r.stdout
