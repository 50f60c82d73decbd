"""The fleet config file: a good one loads; each bad one is refused with the key and the fix, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet.cli.main import _register, app
from fleet.infra.config import Cloud, ConfigError, load_config

_register()
runner = CliRunner()

GOOD = """
cloud = "aws"
name = "prod"
region = "us-west-2"
zone = "us-west-2a"
fleet_url = "https://fleet.example.com"
executor_secret_env = "FLEET_EXECUTORS_ACCESS_TOKEN"
executor_image = "ami-0123456789abcdef0"

[mirror]
disk_size = 100

[state]
backend = "s3"
bucket = "acme-terraform"

[[pools]]
name = "batches"
queue = "batches"
machine_type = "c5n.metal"
max_replicas = 4
jobs_per_instance_scaling = 5
spot = true

[[pools]]
name = "multi"
queues = ["codeintel", "batches"]
machine_type = "c5n.metal"
job_memory = "8G"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.cloud is Cloud.AWS and config.metrics_environment == "prod"
    assert [config.group_name(p) for p in config.pools] == ["prod-executors-batches", "prod-executors-multi"]
    assert config.pools[1].metric_queue_name == "batches_codeintel"
    assert config.mirror.disk_size == 100 and config.pools[0].spot
    monkeypatch.setenv("FLEET_EXECUTORS_ACCESS_TOKEN", "s" * 24)
    assert config.executor_secret() == "s" * 24


def test_secret_from_file_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    text = GOOD.replace('executor_secret_env = "FLEET_EXECUTORS_ACCESS_TOKEN"', f'executor_secret_file = "{secret}"')
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="executor_secret_file: cannot read"):
        config.executor_secret()
    secret.write_text("short\n")
    with pytest.raises(ConfigError, match="has 5 characters"):
        config.executor_secret()
    secret.write_text("x" * 30 + "\n")
    assert config.executor_secret() == "x" * 30
    monkeypatch.delenv("FLEET_EXECUTORS_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="FLEET_EXECUTORS_ACCESS_TOKEN is not set"):
        load_config(write(tmp_path, GOOD)).executor_secret()


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('cloud = "aws"', 'cloud = "azure"', "cloud: 'azure': Input should be 'aws' or 'google'"),
        ('region = "us-west-2"\n', "", "region: is required; add it"),
        ('zone = "us-west-2a"', 'zone = "eu-west-1a"', "zone 'eu-west-1a' is not in region 'us-west-2'"),
        (
            "max_replicas = 4",
            "max_replicas = 4\nmin_replicas = 9",
            "pools.0: max_replicas (4) is below min_replicas (9)",
        ),
        ("max_replicas = 4", "max_replicas = 0", "pools.0.max_replicas: 0: Input should be greater than or equal to 1"),
        ('queue = "batches"', "", "pools.0: set exactly one of `queue"),
        ('name = "multi"', 'name = "batches"', "pool names must be unique; rename the repeated batches"),
        ('name = "prod"', 'name = "Prod_Fleet"', "name: 'Prod_Fleet' does not match"),
        (
            'fleet_url = "https://fleet.example.com"',
            'fleet_url = "fleet.example.com"',
            "fleet_url: 'fleet.example.com'",
        ),
        ('executor_secret_env = "FLEET_EXECUTORS_ACCESS_TOKEN"', "", "set exactly one of executor_secret_env"),
        ("spot = true", "spotty = true", "pools.0.spotty: is not a known key"),
        ('bucket = "acme-terraform"', "", "backend 's3' needs `bucket"),
        ('job_memory = "8G"', 'job_memory = "lots"', "pools.1.job_memory: 'lots' does not match"),
        (
            'executor_image = "ami-0123456789abcdef0"',
            'executor_image = "ami-1"\nexecutor_secret = "hunter2"',
            "secrets do not belong",
        ),
        ('cloud = "aws"', 'cloud = "google"', "needs `project"),
        ("[mirror]", "[mirror", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert needle in str(info.value)
    assert str(info.value).startswith(str(path))
    result = runner.invoke(app, ["status", "--config", str(path)])
    assert result.exit_code == 2
    assert needle in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "no such fleet config" in result.stderr


@pytest.mark.parametrize("cloud", ["aws", "google"])
def test_use_firecracker_reaches_the_executors_module(tmp_path: Path, cloud: str) -> None:
    from fleet.infra.workdir import module_root, render

    text = GOOD.replace('job_memory = "8G"', 'job_memory = "8G"\nuse_firecracker = false')
    if cloud == "google":
        text = text.replace('cloud = "aws"', 'cloud = "google"\nproject = "acme"').replace("us-west-2", "us-central1")
        text = text.replace('backend = "s3"', 'backend = "gcs"').replace("c5n.metal", "n2-standard-8")
    config = load_config(write(tmp_path, text))
    main, values = render(config, module_root(config), tmp_path / "work")
    assert {name: pool["use_firecracker"] for name, pool in values["pools"].items()} == {
        "batches": True,
        "multi": False,
    }
    assert main["module"]["executors"]["use_firecracker"] == "${each.value.use_firecracker}"
