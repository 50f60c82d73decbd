"""The names the modules share with the rest of the project: agent settings, the scaling metric, credentials."""

from __future__ import annotations

import re

import pytest

from executor_agent.config import ExecutorSettings
from metrics_publisher.backends import cloudwatch, google
from metrics_publisher.config import DEFAULT_AWS_NAMESPACE
from tests.terraform.harness import REPO_TERRAFORM
from tests.terraform.hcl import blocks, load, outputs, unquote, variables

AGENT_ENV_NAMES = {str(field.validation_alias) for field in ExecutorSettings.model_fields.values()}
# The seeds' variable names, which operators know from the reference deployment guides.
# Seed 001's `module "executors"` block, exactly the variables it writes.
SEED_001_BLOCK = {
    "executor_sourcegraph_external_url",
    "executor_sourcegraph_executor_proxy_password",
    "executor_queue_name",
    "executor_instance_tag",
    "executor_metrics_environment_label",
    "docker_mirror_static_ip",
}
SEED_ROOT_VARIABLES = SEED_001_BLOCK | {
    "min_replicas",
    "max_replicas",
    "jobs_per_instance_scaling",
    "randomize_resource_names",
}
CLOUDS = ["aws", "google"]


def env_names_set_by(cloud: str) -> set[str]:
    """The names the executors module's variables put in the env file (`local.env_from_variables`)."""
    main = load(REPO_TERRAFORM / cloud / "modules/executors/main.tf")
    (local_blocks,) = [b for b in main["locals"] if "env_from_variables" in b]
    return set(local_blocks["env_from_variables"])


def test_env_module_accepts_only_agent_settings() -> None:
    text = (REPO_TERRAFORM / "common/executor-env/main.tf").read_text()
    accepted = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', text))
    assert len(accepted) > 25
    assert accepted <= AGENT_ENV_NAMES, f"not agent settings: {accepted - AGENT_ENV_NAMES}"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_startup_env_names_are_the_agents(cloud: str) -> None:
    names = env_names_set_by(cloud)
    assert names <= AGENT_ENV_NAMES, f"not agent settings: {names - AGENT_ENV_NAMES}"
    assert {
        "EXECUTOR_FRONTEND_URL",
        "EXECUTOR_FRONTEND_PASSWORD",
        "EXECUTOR_QUEUE_NAME",
        "EXECUTOR_QUEUE_NAMES",
    } <= names


def test_both_clouds_write_the_same_settings() -> None:
    assert env_names_set_by("aws") == env_names_set_by("google")


@pytest.mark.parametrize("cloud", CLOUDS)
def test_root_modules_keep_the_seed_variable_names(cloud: str) -> None:
    declared = set(variables(REPO_TERRAFORM / cloud))
    assert declared >= SEED_ROOT_VARIABLES, f"missing: {SEED_ROOT_VARIABLES - declared}"
    assert variables(REPO_TERRAFORM / cloud)["executor_sourcegraph_executor_proxy_password"].sensitive


@pytest.mark.parametrize("cloud", CLOUDS)
def test_seed_001_block_as_written_sets_every_required_variable(cloud: str) -> None:
    """On AWS terraform/aws/tests/seed.tftest.hcl also plans it; no Google provider runs here, so this is the
    Google side's check: nothing the block leaves out is required (project and image have defaults)."""
    required = {name for name, v in variables(REPO_TERRAFORM / cloud).items() if v.required}
    assert required <= SEED_001_BLOCK, f"the seed's block does not set: {sorted(required - SEED_001_BLOCK)}"


def test_google_defaults_take_the_providers_project_and_the_packer_image_family() -> None:
    main = (REPO_TERRAFORM / "google/main.tf").read_text()
    assert 'data "google_client_config" "current"' in main
    assert "data.google_client_config.current.project" in main
    pkr = (REPO_TERRAFORM.parent / "images/executor/executor.pkr.hcl").read_text()
    family = re.search(r'^\s*image_family\s*=\s*"([^"]+)"', pkr, re.MULTILINE)
    assert family is not None and f"/global/images/family/{family.group(1)}" in main
    modules = blocks(REPO_TERRAFORM / "google", "module")
    assert {unquote(m["project_id"]) for m in modules.values() if "project_id" in m} == {"${local.project_id}"}
    assert unquote(modules["executors"]["image"]) == "${local.executor_image}"


def test_shared_executor_variables_match_across_clouds() -> None:
    aws = variables(REPO_TERRAFORM / "aws/modules/executors")
    gcp = variables(REPO_TERRAFORM / "google/modules/executors")
    shared = {
        "sourcegraph_external_url",
        "sourcegraph_executor_proxy_password",
        "queue_name",
        "queue_names",
        "instance_tag",
        "metrics_environment_label",
        "min_replicas",
        "max_replicas",
        "jobs_per_instance_scaling",
        "maximum_num_jobs",
        "use_firecracker",
        "docker_registry_mirror",
        "boot_disk_size",
        "machine_type",
    }
    assert shared <= set(aws) & set(gcp)
    for name in shared:
        assert (aws[name].type, aws[name].default) == (gcp[name].type, gcp[name].default) or name == "machine_type", (
            name
        )


def test_aws_alarm_reads_the_publishers_metric() -> None:
    directory = REPO_TERRAFORM / "aws/modules/executors"
    text = (directory / "scaling.tf").read_text()
    assert f'metric_name = "{cloudwatch.METRIC_NAME}"' in text
    assert variables(directory)["metrics_namespace"].default == DEFAULT_AWS_NAMESPACE
    assert "queueName   = local.metric_queue_name" in text
    assert "environment = var.metrics_environment_label" in text


def test_google_autoscaler_reads_the_publishers_metric() -> None:
    directory = REPO_TERRAFORM / "google/modules/executors"
    (autoscaler,) = blocks(directory, "resource")["google_compute_region_autoscaler"].values()
    (policy,) = autoscaler["autoscaling_policy"]
    (metric,) = policy["metric"]
    assert metric["name"] == "${local.queue_metric_type}"
    assert metric["single_instance_assignment"] == "${var.jobs_per_instance_scaling}"
    assert (policy["min_replicas"], policy["max_replicas"]) == ("${var.min_replicas}", "${var.max_replicas}")
    text = (directory / "scaling.tf").read_text()
    assert f'queue_metric_type = "{google.METRIC_TYPE}"' in text
    assert f'resource.type = \\"{google.RESOURCE_TYPE}\\"' in text
    assert 'metric.labels.queueName = \\"${local.metric_queue_name}\\"' in text
    assert 'metric.labels.environment = \\"${var.metrics_environment_label}\\"' in text


def test_credentials_grant_only_metric_writes() -> None:
    directory = REPO_TERRAFORM / "google/modules/credentials"
    (role,) = blocks(directory, "resource")["google_project_iam_custom_role"].values()
    assert [unquote(p) for p in role["permissions"]] == ["monitoring.timeSeries.create"]
    assert {"metric_writer_credentials_file"} <= set(outputs(directory))
    assert outputs(directory)["metric_writer_credentials_file"].sensitive
    aws = outputs(REPO_TERRAFORM / "aws/modules/credentials")
    assert {"metric_writer_access_key_id", "metric_writer_secret_key"} <= set(aws)
    assert aws["metric_writer_secret_key"].sensitive
