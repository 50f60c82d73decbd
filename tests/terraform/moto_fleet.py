"""`examples/single-executor` applied against a moto server in a background thread.

The apply spends most of its minute waiting on the AWS provider's status polls, so it is started as soon as the
session's first Terraform test runs and the provider-free and mocked tests run meanwhile.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.terraform.harness import Result, Terraform, copy_tree, find_provider_mirror, find_terraform
from tests.terraform.render import TRICKY_PASSWORD

EXAMPLE = "aws/examples/single-executor"
REGION = "us-west-2"
# The endpoint and the dummy credentials belong to the test, never to the modules.
PROVIDER_OVERRIDE = f"""provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "moto"
  secret_key                  = "moto"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}}
"""


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id="moto", aws_secret_access_key="moto"
    )


class MotoFleet:
    def __init__(self, endpoint: str, workdir: Path) -> None:
        self.endpoint = endpoint
        self.tf = Terraform(find_terraform(), find_provider_mirror(), copy_tree(workdir / "terraform"))
        self.directory = self.tf.dir(EXAMPLE)
        self.env = {"AWS_ENDPOINT_URL": endpoint}
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._apply, name="moto-apply", daemon=True)

    def start(self) -> None:
        (self.directory / "moto_override.tf").write_text(PROVIDER_OVERRIDE)
        images = [image["ImageId"] for image in client("ec2", self.endpoint).describe_images()["Images"][:2]]
        values = {
            "region": REGION,
            "availability_zone": f"{REGION}a",
            "executor_ami": images[0],
            "docker_mirror_ami": images[1],
            "executor_sourcegraph_external_url": "http://127.0.0.1:3080",
            "executor_sourcegraph_executor_proxy_password": TRICKY_PASSWORD,
        }
        (self.directory / "terraform.tfvars.json").write_text(json.dumps(values))
        self._thread.start()

    def _apply(self) -> None:
        try:
            self.tf.init(EXAMPLE)
            self._result = self.tf.run(
                self.directory, "apply", "-auto-approve", "-input=false", env=self.env, timeout=600
            )
        except BaseException as exc:  # reported by wait() in the test's thread
            self._error = exc

    def wait(self) -> dict[str, Any]:
        """The example's outputs once the apply has finished; fails the test with terraform's output otherwise."""
        self._thread.join(timeout=700)
        if self._error is not None:
            pytest.fail(f"terraform init/apply against moto failed: {self._error}")
        result = self._result
        if result is None or result.returncode != 0:
            detail = "" if result is None else f"{result.stdout}\n{result.stderr}"
            pytest.fail(f"terraform apply against moto did not succeed:\n{detail}")
        return self.tf.output_json(self.directory)

    def destroy(self) -> Result:
        self._thread.join(timeout=700)
        return self.tf.run(self.directory, "destroy", "-auto-approve", "-input=false", env=self.env, timeout=600)
