"""Formatting, validation and `terraform test` (mocked AWS provider) of every AWS module and example."""

from __future__ import annotations

import subprocess

import pytest

from tests.terraform.harness import REPO_TERRAFORM, Terraform, find_terraform

pytestmark = pytest.mark.terraform

AWS_CONFIGURATIONS = [
    "aws",
    "aws/modules/networking",
    "aws/modules/docker-mirror",
    "aws/modules/executors",
    "aws/modules/credentials",
    "aws/examples/single-executor",
    "aws/examples/multiple-executors",
    "aws/examples/private-single-executor",
]

# Directories with `tests/*.tftest.hcl`; each plans against `mock_provider "aws"` and asserts on the planned values.
TESTED_MODULES = [
    "aws",
    "aws/modules/networking",
    "aws/modules/docker-mirror",
    "aws/modules/executors",
    "aws/modules/credentials",
    "common/executor-env",
]


def test_every_file_is_terraform_fmt_clean() -> None:
    proc = subprocess.run(
        [find_terraform(), "fmt", "-check", "-recursive", "-diff", str(REPO_TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{proc.stdout}{proc.stderr}"


def test_every_aws_directory_is_covered() -> None:
    found = {str(p.parent.relative_to(REPO_TERRAFORM)) for p in (REPO_TERRAFORM / "aws").rglob("versions.tf")}
    assert found == set(AWS_CONFIGURATIONS)


@pytest.mark.parametrize("relative", AWS_CONFIGURATIONS)
def test_validate(terraform: Terraform, relative: str) -> None:
    directory = terraform.init(relative)
    result = terraform.check(directory, "validate")
    assert "The configuration is valid" in result.stdout


@pytest.mark.parametrize("relative", TESTED_MODULES)
def test_terraform_test(terraform: Terraform, relative: str) -> None:
    directory = terraform.init(relative)
    result = terraform.run(directory, "test")
    assert result.returncode == 0, f"terraform test in terraform/{relative}:\n{result.stdout}\n{result.stderr}"
    assert " 0 failed" in result.stdout and "Success!" in result.stdout, result.stdout
