"""Runs the real `terraform` binary against a throwaway copy of the repository's `terraform/` tree.

The copy keeps `.terraform/` directories, state and lock files out of the working tree. Providers come from the local
filesystem mirror (`-plugin-dir`); Terraform links the provider into each directory instead of copying its 600 MB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
PROVIDER_MIRROR_HINT = (
    "the AWS provider is not in a local filesystem mirror: put terraform-provider-aws_v5.x under "
    "<dir>/registry.terraform.io/hashicorp/aws/<version>/linux_amd64/ (e.g. `terraform providers mirror <dir>` on a "
    "machine with network access, or unzip the release from releases.hashicorp.com) and rerun"
)
TERRAFORM_HINT = (
    "terraform (>= 1.9) is not on PATH: install it from https://developer.hashicorp.com/terraform/install "
    "(e.g. `apt-get install terraform` from the HashiCorp apt repository) and rerun"
)


def find_terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.fail(TERRAFORM_HINT)
    return path


def find_provider_mirror() -> Path:
    """The folder holding `registry.terraform.io/`, located by searching for the provider binary."""
    for candidate in (os.environ.get("FLEET_TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and any(Path(candidate).glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws_*")):
            return Path(candidate)
    found = subprocess.run(
        ["find", "/", "-xdev", "-name", "terraform-provider-aws_*", "-path", "*registry.terraform.io*"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for binary in found:
        parts = Path(binary).parts
        if "registry.terraform.io" in parts:
            return Path(*parts[: parts.index("registry.terraform.io")])
    pytest.fail(PROVIDER_MIRROR_HINT)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Terraform:
    """One copy of the terraform tree per test session; each directory is initialised at most once."""

    binary: str
    plugin_dir: Path | None
    root: Path
    timings: dict[str, float] = field(default_factory=dict)
    _initialised: set[Path] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))}
        # No CLI config: nothing may reach a registry, and a missing ~/.terraformrc is not worth a warning.
        env.update(TF_CLI_CONFIG_FILE=os.devnull, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", NO_COLOR="1")
        env.update(extra or {})
        return env

    def run(self, directory: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            [self.binary, *args, "-no-color"] if args[0] not in ("fmt", "output") else [self.binary, *args],
            cwd=directory,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        key = f"{args[0]} {directory.relative_to(self.root)}"
        self.timings[key] = self.timings.get(key, 0.0) + seconds
        return Result(proc.returncode, proc.stdout, proc.stderr, seconds)

    def check(self, directory: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        result = self.run(directory, *args, env=env, timeout=timeout)
        assert result.returncode == 0, (
            f"terraform {' '.join(args)} in {directory} failed:\n{result.stdout}\n{result.stderr}"
        )
        return result

    def dir(self, relative: str) -> Path:
        return self.root / relative

    def init(self, relative: str) -> Path:
        directory = self.dir(relative)
        with self._lock:
            if directory in self._initialised:
                return directory
            args = ["init", "-input=false", "-backend=false"]
            if self.plugin_dir is not None:
                args.append(f"-plugin-dir={self.plugin_dir}")
            self.check(directory, *args)
            self._initialised.add(directory)
        return directory

    def output_json(self, directory: Path) -> dict[str, Any]:
        result = self.check(directory, "output", "-json")
        return {name: entry["value"] for name, entry in json.loads(result.stdout).items()}


def copy_tree(destination: Path) -> Path:
    shutil.copytree(
        REPO_TERRAFORM,
        destination,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "terraform.tfstate*", "*.tfplan"),
    )
    return destination
