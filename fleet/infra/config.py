"""The fleet config file (`fleet.toml`): one fleet, its cloud, network, mirror, state backend and executor pools.

Secrets never live in this file: the executor secret is read from an environment variable or a file named here.
"""

from __future__ import annotations

import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from executor_agent.settings_common import Problem, one_line

DEFAULT_PATH = Path("fleet.toml")
MIN_SECRET_LENGTH = 20
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,14}$"


class Cloud(StrEnum):
    AWS = "aws"
    GOOGLE = "google"


class StateBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"
    GCS = "gcs"


class ConfigError(ValueError):
    """A fleet config that cannot be used; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolConfig(_Section):
    name: str = Field(pattern=NAME_PATTERN, description="Pool name: lower-case letters, digits, dashes (≤ 15).")
    queue: str | None = Field(default=None, description="Queue the pool's executors work on.")
    queues: list[str] = Field(default_factory=list, description="Several queues instead of `queue`.")
    machine_type: str = Field(description="Instance type (AWS) or machine type (Google).")
    image: str | None = Field(default=None, description="Executor image for this pool; default: executor_image.")
    min_replicas: int = Field(default=0, ge=0, description="Fewest instances.")
    max_replicas: int = Field(default=1, ge=1, description="Most instances.")
    jobs_per_instance_scaling: int = Field(default=360, ge=1, description="Queued jobs per instance.")
    job_slots: int = Field(default=1, ge=1, description="Jobs per instance at once (EXECUTOR_MAXIMUM_NUM_JOBS).")
    job_cpus: int = Field(default=4, ge=1, description="CPUs per job (EXECUTOR_JOB_NUM_CPUS).")
    job_memory: str = Field(default="12G", pattern=r"^\d+[KMG]B?$", description="Memory per job, e.g. 12G.")
    job_disk: str = Field(default="20G", pattern=r"^\d+[KMG]B?$", description="Disk per job, e.g. 20G.")
    spot: bool = Field(default=False, description="Run on spot / preemptible capacity.")
    use_firecracker: bool = Field(
        default=True,
        description="One microVM per job (EXECUTOR_USE_FIRECRACKER); needs KVM: a metal type on AWS, nested "
        "virtualization on Google (the module enables it). false = Docker containers on any machine type.",
    )
    group_name: str | None = Field(default=None, description="Override of the instance group's name.")

    @model_validator(mode="after")
    def _check(self) -> PoolConfig:
        if (self.queue is None) == (not self.queues):
            raise ValueError('set exactly one of `queue = "name"` or `queues = ["a", "b"]`')
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas}): raise it"
            )
        return self

    @property
    def metric_queue_name(self) -> str:
        """The `queueName` label the publisher writes and the autoscaler reads (contract §6)."""
        return self.queue if self.queue is not None else "_".join(sorted(self.queues))

    @property
    def queue_list(self) -> list[str]:
        return [self.queue] if self.queue is not None else sorted(self.queues)


class MirrorConfig(_Section):
    image: str | None = Field(default=None, description="Image of the Docker mirror VM; default: executor_image.")
    machine_type: str | None = Field(default=None, description="Mirror machine type; default: the module's.")
    disk_size: int = Field(default=64, ge=10, description="Size in GB of the mirror's image cache disk.")
    static_ip: str = Field(default="10.0.1.4", description="Private IP of the mirror inside the subnet.")


class StateConfig(_Section):
    backend: StateBackend = Field(default=StateBackend.LOCAL, description="Where Terraform keeps its state.")
    path: str = Field(default="terraform.tfstate", description="State file (local backend).")
    bucket: str | None = Field(default=None, description="Bucket (s3 or gcs backend).")
    key: str = Field(default="executor-fleet/terraform.tfstate", description="Object key (s3) or prefix (gcs).")
    region: str | None = Field(default=None, description="Bucket region (s3); default: the fleet's region.")

    @model_validator(mode="after")
    def _check(self) -> StateConfig:
        if self.backend is not StateBackend.LOCAL and not self.bucket:
            raise ValueError(f'backend {self.backend.value!r} needs `bucket = "..."` in [state]')
        return self


class FleetConfig(_Section):
    cloud: Cloud = Field(description="aws or google.")
    name: str = Field(default="fleet", pattern=NAME_PATTERN, description="Prefix of every resource name.")
    region: str = Field(description="AWS region or Google region, e.g. us-west-2 / us-central1.")
    zone: str = Field(description="Availability zone (AWS) or zone (Google), e.g. us-west-2a / us-central1-a.")
    project: str | None = Field(default=None, description="Google project id (google only).")
    fleet_url: str = Field(pattern=r"^https?://[^\s/]+", description="Fleet server URL as executors reach it.")
    executor_secret_env: str | None = Field(default=None, description="Env variable holding the executor secret.")
    executor_secret_file: Path | None = Field(default=None, description="File holding the executor secret.")
    executor_image: str = Field(description="Executor VM image (AMI id or Google image).")
    environment_label: str | None = Field(default=None, description="Metric `environment` label; default: name.")
    private_networking: bool = Field(default=False, description="No public IPs; outbound through NAT.")
    ssh_access_cidr_range: str = Field(default="", description="CIDR allowed to SSH in; empty closes SSH.")
    compute_api_endpoint: str | None = Field(default=None, description="Google Compute API endpoint override.")
    mirror: MirrorConfig = Field(default_factory=MirrorConfig, description="The Docker registry mirror.")
    state: StateConfig = Field(default_factory=StateConfig, description="Terraform state backend.")
    pools: list[PoolConfig] = Field(min_length=1, description="Executor pools, one [[pools]] table each.")

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if (self.executor_secret_env is None) == (self.executor_secret_file is None):
            raise ValueError(
                'set exactly one of executor_secret_env = "VAR" or executor_secret_file = "/path" '
                "(the secret itself never goes in this file)"
            )
        if self.cloud is Cloud.GOOGLE and not self.project:
            raise ValueError('cloud = "google" needs `project = "<project id>"`')
        if not self.zone.startswith(self.region):
            raise ValueError(
                f"zone {self.zone!r} is not in region {self.region!r}: use e.g. {self.region}-a or {self.region}a"
            )
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; rename the repeated {', '.join(dupes)}")
        if self.state.backend is StateBackend.S3 and self.cloud is not Cloud.AWS:
            raise ValueError('state backend s3 is for cloud = "aws"; use gcs or local')
        if self.state.backend is StateBackend.GCS and self.cloud is not Cloud.GOOGLE:
            raise ValueError('state backend gcs is for cloud = "google"; use s3 or local')
        return self

    @property
    def metrics_environment(self) -> str:
        return self.environment_label or self.name

    def group_name(self, pool: PoolConfig) -> str:
        # Mirrors the executors module's naming: "<prefix>executors-<instance tag>".
        return pool.group_name or f"{self.name}-executors-{pool.name}"

    def executor_secret(self) -> str:
        """The shared executor secret, from the environment or the file this config names."""
        if self.executor_secret_env is not None:
            value = os.environ.get(self.executor_secret_env, "")
            source = f"environment variable {self.executor_secret_env}"
            if not value:
                raise ConfigError(f"executor_secret_env: {source} is not set; export it (the fleet server's secret)")
        else:
            assert self.executor_secret_file is not None
            source = f"file {self.executor_secret_file}"
            try:
                value = self.executor_secret_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"executor_secret_file: cannot read {source} ({exc.strerror}); fix the path"
                ) from None
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"the executor secret in {source} has {len(value)} characters; use the fleet server's "
                f"FLEET_EXECUTORS_ACCESS_TOKEN (at least {MIN_SECRET_LENGTH})"
            )
        return value


def _error_line(exc: ValidationError, path: Path) -> str:
    def render(p: Problem) -> str:
        if p.kind == "missing":
            msg = "is required; add it"
        elif p.kind == "extra_forbidden":
            msg = "is not a known key; remove it or check its spelling (see docs/infra.md)"
        elif p.kind == "string_pattern_mismatch":
            msg = f"{p.input!r} does not match {p.ctx.get('pattern')}"
        elif p.has_input and not isinstance(p.input, dict):
            msg = f"{p.input!r}: {p.msg}"
        else:
            msg = p.msg
        return f"{p.key}: {msg}" if p.key else msg

    return one_line(exc, render, prefix=f"{path}: ")


def parse_config(data: dict[str, Any], path: Path) -> FleetConfig:
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc, path)) from None


def load_config(path: Path = DEFAULT_PATH) -> FleetConfig:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such fleet config; write one (see docs/infra.md) or pass --config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if re.search(r"(?im)^\s*(executor_secret|secret|password|access_token)\s*=", text):
        raise ConfigError(
            f"{path}: secrets do not belong in the config; use executor_secret_env or executor_secret_file"
        )
    return parse_config(data, path)
