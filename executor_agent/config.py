"""The agent's configuration: the seeds' environment variables (docs/executor.md, "Configuration"), read once at start.

A bad or missing value stops the program before it does anything, with one line per variable naming it, the bad
value and an example of a good one (exit 2).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

from executor_agent import settings_common
from executor_agent.protocol.durations import format_duration, parse_duration, parse_size
from executor_agent.settings_common import Problem, check_one_of, is_host_port, is_http_url, one_line

CONFIG_EXIT_CODE = 2
MIN_SECRET_LENGTH = 20  # as the server requires of FLEET_EXECUTORS_ACCESS_TOKEN
MAX_LONG_POLL_SECONDS = 30.0  # the server's default FLEET_MAX_LONG_POLL_SECONDS


class RuntimeName(StrEnum):
    FIRECRACKER = "firecracker"
    DOCKER = "docker"
    SHELL = "shell"


LOG_LEVELS = {
    "dbug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}


def _duration(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    seconds = parse_duration(str(value))
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; use e.g. 30m")
    return seconds


def _size(value: Any) -> int:
    return int(value) if isinstance(value, int) else parse_size(str(value))


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]

# Good values shown next to a bad one, so the fix is on the same line as the problem.
EXAMPLES = {
    "EXECUTOR_FRONTEND_URL": "http://fleet.example.com:3080",
    "EXECUTOR_FRONTEND_PASSWORD": "the server's FLEET_EXECUTORS_ACCESS_TOKEN",
    "EXECUTOR_QUEUE_NAME": "batches",
    "EXECUTOR_QUEUE_NAMES": "batches,codeintel",
    "EXECUTOR_MAXIMUM_NUM_JOBS": "1",
    "EXECUTOR_JOB_NUM_CPUS": "4",
    "EXECUTOR_RUNTIME": "docker",
    "EXECUTOR_METRICS_ADDR": "0.0.0.0:9999",
    "SRC_LOG_LEVEL": "warn",
}


def _env(name: str, default: Any, description: str, **kw: Any) -> Any:
    return Field(default, validation_alias=name, description=description, **kw)


class ExecutorSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, case_sensitive=True)

    frontend_url: str = _env("EXECUTOR_FRONTEND_URL", ..., "External URL of the fleet server. Required.")
    frontend_password: str = _env(
        "EXECUTOR_FRONTEND_PASSWORD", ..., "Shared executor secret (the server's FLEET_EXECUTORS_ACCESS_TOKEN)."
    )
    queue_name: str = _env("EXECUTOR_QUEUE_NAME", "", "Queue to take jobs from (or use EXECUTOR_QUEUE_NAMES).")
    queue_names_raw: str = _env("EXECUTOR_QUEUE_NAMES", "", "Comma-separated queues to take jobs from.")
    use_firecracker: bool = _env(
        "EXECUTOR_USE_FIRECRACKER", sys.platform.startswith("linux"), "Isolate jobs in Firecracker microVMs."
    )
    runtime_raw: str = _env(
        "EXECUTOR_RUNTIME", "", "firecracker, docker or shell; defaults to what EXECUTOR_USE_FIRECRACKER says."
    )
    maximum_num_jobs: int = _env("EXECUTOR_MAXIMUM_NUM_JOBS", 1, "Jobs run at once.", ge=1)
    maximum_runtime_per_job: Duration = _env("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "30m", "Wall time limit per job.")
    job_memory: Size = _env("EXECUTOR_JOB_MEMORY", "12G", "Memory per job container; 0 = unbounded in Docker.")
    job_num_cpus: float = _env("EXECUTOR_JOB_NUM_CPUS", 4, "CPUs per job container; 0 = unbounded in Docker.", ge=0)
    docker_registry_mirror_url: str = _env(
        "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL", "", "Registry mirror the Docker daemon should pull through."
    )
    firecracker_disk_space: Size = _env("EXECUTOR_FIRECRACKER_DISK_SPACE", "20G", "Disk per microVM.")
    firecracker_bandwidth_egress: int = _env(
        "EXECUTOR_FIRECRACKER_BANDWIDTH_EGRESS", 524288000, "Egress bytes/s per microVM.", ge=0
    )
    firecracker_bandwidth_ingress: int = _env(
        "EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS", 524288000, "Ingress bytes/s per microVM.", ge=0
    )
    keep_workspaces: bool = _env("EXECUTOR_KEEP_WORKSPACES", False, "Keep job workspaces after the job ends.")
    max_active_time: Duration = _env(
        "EXECUTOR_MAX_ACTIVE_TIME", "0", "Stop dequeuing after this long, finish running jobs, exit 0. 0 = never."
    )
    num_total_jobs: int = _env(
        "EXECUTOR_NUM_TOTAL_JOBS", 0, "Stop after dequeuing this many jobs, finish them, exit 0. 0 = never.", ge=0
    )
    docker_host_mount_path: str = _env(
        "EXECUTOR_DOCKER_HOST_MOUNT_PATH", "", "Where the workspace root lives on the Docker host (Docker-in-Docker)."
    )
    queue_poll_interval: Duration = _env("EXECUTOR_QUEUE_POLL_INTERVAL", "1s", "Pause between empty dequeues.")
    queue_long_poll: Duration = _env(
        "EXECUTOR_QUEUE_LONG_POLL", "10s", "How long one dequeue waits at the server for a job (max 30s); 0 = off."
    )
    heartbeat_interval: Duration = _env(
        "EXECUTOR_HEARTBEAT_INTERVAL", "5s", "How often running jobs are reported alive; keep it below the stall time."
    )
    cleanup_task_interval: Duration = _env(
        "EXECUTOR_CLEANUP_TASK_INTERVAL", "1m", "How often the janitor removes orphaned containers and workspaces."
    )
    vm_prefix: str = _env("EXECUTOR_VM_PREFIX", "executor", "Name prefix of containers and workspaces.")
    vm_startup_script_path: str = _env(
        "EXECUTOR_VM_STARTUP_SCRIPT_PATH", "", "Script run at the start of every sandbox (Firecracker only)."
    )
    node_exporter_url: str = _env("NODE_EXPORTER_URL", "", "node_exporter URL (no /metrics) for /proxy?module=node.")
    firecracker_image: str = _env("EXECUTOR_FIRECRACKER_IMAGE", "sourcegraph/executor-vm:insiders", "VM base image.")
    firecracker_kernel_image: str = _env(
        "EXECUTOR_FIRECRACKER_KERNEL_IMAGE", "sourcegraph/ignite-kernel:5.10.135-amd64", "VM kernel image."
    )
    firecracker_sandbox_image: str = _env(
        "EXECUTOR_FIRECRACKER_SANDBOX_IMAGE", "sourcegraph/ignite:v0.10.5", "OCI image of the VM sandbox."
    )
    docker_registry_node_exporter_url: str = _env(
        "DOCKER_REGISTRY_NODE_EXPORTER_URL", "", "node_exporter of the registry mirror, without /metrics."
    )
    src_log_level: str = _env("SRC_LOG_LEVEL", "warn", "dbug, info, warn, error or crit.")
    docker_host: str = _env("DOCKER_HOST", "", "Docker Engine address; empty = the default socket.")
    metrics_addr: str = _env(
        "EXECUTOR_METRICS_ADDR", "0.0.0.0:9999", "HOST:PORT serving /metrics and /proxy; empty = off."
    )
    workspace_root: str = _env("EXECUTOR_WORKSPACE_ROOT", "", "Directory for job workspaces; empty = system temp.")
    trusted_queues_raw: str = _env(
        "EXECUTOR_TRUSTED_QUEUES",
        "",
        "Queues whose jobs may run unisolated on this host (shell runtime, cliSteps); `*` = all.",
    )
    max_log_entry_bytes: Size = _env("EXECUTOR_MAX_LOG_ENTRY_BYTES", "4M", "Output kept per log entry.")
    shutdown_grace_period: Duration = _env(
        "EXECUTOR_SHUTDOWN_GRACE_PERIOD",
        "0",
        "After the first SIGTERM, how long running jobs may still take; 0 = EXECUTOR_MAXIMUM_RUNTIME_PER_JOB.",
    )

    # Draft 002's names (docs/executor.md, "Installing"): each is honoured or refused, never silently ignored.
    seed_max_num_jobs: str = _env("EXECUTOR_MAX_NUM_JOBS", "", "Draft 002's name of EXECUTOR_MAXIMUM_NUM_JOBS.")
    seed_backend: str = _env("EXECUTOR_BACKEND", "", "Draft 002: docker selects the Docker runtime.")
    seed_registration_token: str = _env(
        "EXECUTOR_REGISTRATION_TOKEN", "", "Draft 002's name of EXECUTOR_FRONTEND_PASSWORD."
    )

    @model_validator(mode="before")
    @classmethod
    def _seed_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for seed, ours in (
            ("EXECUTOR_MAX_NUM_JOBS", "EXECUTOR_MAXIMUM_NUM_JOBS"),
            ("EXECUTOR_REGISTRATION_TOKEN", "EXECUTOR_FRONTEND_PASSWORD"),
        ):
            value = data.pop(seed, None)
            if value in (None, ""):
                continue
            if data.get(ours, value) != value:
                raise ValueError(f"{seed}|{seed} and {ours} are both set, to different values; set only {ours}")
            data[ours] = value
        backend = data.pop("EXECUTOR_BACKEND", None)
        if backend == "kubernetes":
            raise ValueError(
                "EXECUTOR_BACKEND|kubernetes is not supported; jobs run in Docker on this host: "
                "set EXECUTOR_BACKEND=docker (or EXECUTOR_RUNTIME=docker, shell or firecracker)"
            )
        if backend not in (None, "", "docker"):
            raise ValueError(f"EXECUTOR_BACKEND|{backend!r} is not a backend; use EXECUTOR_BACKEND=docker")
        if backend == "docker":
            if data.get("EXECUTOR_RUNTIME", "docker") != "docker":
                raise ValueError(
                    f"EXECUTOR_BACKEND|EXECUTOR_BACKEND=docker contradicts EXECUTOR_RUNTIME={data['EXECUTOR_RUNTIME']}"
                    "; set only one of them"
                )
            data["EXECUTOR_RUNTIME"] = "docker"
        return data

    # --- MicroVM runtime (EXECUTOR_USE_FIRECRACKER=true); docs/executor.md "MicroVM isolation" ---
    vm_backend: str = _env(
        "EXECUTOR_VM_BACKEND", "firecracker", "Monitor of the microVM runtime: firecracker, or qemu (-M microvm)."
    )
    vm_allow_emulation: bool = _env(
        "EXECUTOR_VM_ALLOW_EMULATION", False, "qemu backend: boot in software emulation (TCG) where KVM is unusable."
    )
    vm_assets_dir: str = _env(
        "EXECUTOR_VM_ASSETS_DIR", "/var/lib/executor/vm", "Kernel, initrd and image cache of `executor install vm`."
    )
    vm_image_cache_size: Size = _env(
        "EXECUTOR_VM_IMAGE_CACHE_SIZE", "20G", "Bound of the step-image disk cache (least recently used go first)."
    )

    @field_validator("vm_backend")
    @classmethod
    def _vm_backend(cls, v: str) -> str:
        if v not in ("firecracker", "qemu"):
            raise ValueError("must be firecracker or qemu")
        return v

    @model_validator(mode="after")
    def _vm_sizing(self) -> ExecutorSettings:
        if self.runtime == RuntimeName.FIRECRACKER and self.job_memory <= 0:
            raise ValueError(
                "EXECUTOR_JOB_MEMORY|0 (unbounded) is not possible for a microVM; give each VM its memory, "
                "e.g. EXECUTOR_JOB_MEMORY=12G"
            )
        if self.runtime == RuntimeName.FIRECRACKER and self.job_num_cpus < 1:
            raise ValueError("EXECUTOR_JOB_NUM_CPUS|a microVM needs at least 1 vCPU, e.g. EXECUTOR_JOB_NUM_CPUS=4")
        return self

    # --- end of the microVM block ---

    @field_validator("frontend_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or len(v) < 10:
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("frontend_password")
    @classmethod
    def _password(cls, v: str) -> str:
        if len(v) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (got {len(v)})")
        return v

    @field_validator("heartbeat_interval", "maximum_runtime_per_job", "cleanup_task_interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be more than 0; use e.g. 5s")
        return v

    @field_validator("queue_long_poll")
    @classmethod
    def _long_poll(cls, v: float) -> float:
        if v > MAX_LONG_POLL_SECONDS:
            raise ValueError(f"must be at most {format_duration(MAX_LONG_POLL_SECONDS)} (0 turns long polling off)")
        return v

    @field_validator("docker_registry_mirror_url")
    @classmethod
    def _mirror(cls, v: str) -> str:
        if v and not is_http_url(v):
            raise ValueError("must be an http(s) URL, e.g. http://10.0.1.4:5000")
        return v

    @field_validator("queue_name")
    @classmethod
    def _queue_name(cls, v: str) -> str:
        if v and not QUEUE_NAME_RE.match(v):
            raise ValueError("is not a queue name (lowercase letters, digits, - and _; at most 64)")
        return v

    @field_validator("runtime_raw")
    @classmethod
    def _runtime(cls, v: str) -> str:
        if v and v not in {r.value for r in RuntimeName}:
            raise ValueError("must be firecracker, docker or shell")
        return v

    @field_validator("src_log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        return check_one_of(v, LOG_LEVELS, show_value=False)  # the error line shows the value already

    @field_validator("metrics_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        if v and not is_host_port(v):  # empty turns the server off
            raise ValueError("must be HOST:PORT")
        return v

    @model_validator(mode="after")
    def _queues(self) -> ExecutorSettings:
        if bool(self.queue_name) == bool(self.queue_names_raw.strip()):
            raise ValueError("EXECUTOR_QUEUE_NAME|set exactly one of EXECUTOR_QUEUE_NAME and EXECUTOR_QUEUE_NAMES")
        if self.runtime == RuntimeName.SHELL and not all(self.trusts(q) for q in self.queue_names):
            raise ValueError(
                "EXECUTOR_TRUSTED_QUEUES|the shell runtime runs jobs unisolated on this host; list the queues "
                f"whose jobs you trust (e.g. {','.join(self.queue_names)}) or use EXECUTOR_RUNTIME=docker"
            )
        return self

    @property
    def queue_names(self) -> list[str]:
        if self.queue_name:
            return [self.queue_name]
        return sorted({q.strip() for q in self.queue_names_raw.split(",") if q.strip()})

    @property
    def runtime(self) -> RuntimeName:
        if self.runtime_raw:
            return RuntimeName(self.runtime_raw)
        return RuntimeName.FIRECRACKER if self.use_firecracker else RuntimeName.DOCKER

    def trusts(self, queue: str) -> bool:
        trusted = {q.strip() for q in self.trusted_queues_raw.split(",") if q.strip()}
        return "*" in trusted or queue in trusted

    @property
    def drain_seconds(self) -> float:
        return self.shutdown_grace_period or self.maximum_runtime_per_job

    @property
    def log_level(self) -> int:
        return LOG_LEVELS[self.src_log_level]

    def describe_runtime_limit(self) -> str:
        return format_duration(self.maximum_runtime_per_job)


class ConfigError(Exception):
    """Bad configuration; the message holds one line per problem."""


def _line(p: Problem) -> str:
    # Model-level checks name the variable they are about before a `|`, as pydantic has no field to name.
    if p.name is None and "|" in p.msg:
        name, msg = p.msg.split("|", 1)
        return f"{name}: {msg}"
    name = p.name or "configuration"
    example = EXAMPLES.get(name) or _default_of(name)
    hint = f" (e.g. {name}={example})" if example else ""
    if p.kind == "missing":
        return f"{name} is not set; it is required{hint}"
    return f"{name}={p.input!r}: {p.msg}{hint}"


def _default_of(name: str) -> str | None:
    for field in ExecutorSettings.model_fields.values():
        if field.validation_alias == name and field.default not in (None, "", PydanticUndefined):
            value = field.default
            return str(value).lower() if isinstance(value, bool) else str(value)
    return None


def load_settings(**overrides: Any) -> ExecutorSettings:
    """Read the environment; raises ConfigError with one line per bad variable. Unknown EXECUTOR_* names are
    warned about on stderr (one line each) and do not refuse."""
    for line in unknown_variables():
        print(line, file=sys.stderr)
    try:
        return ExecutorSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, _line, sep="\n")) from None


QUEUE_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")  # the server's rule (docs/control-plane.md)
# EXECUTOR_* names read by other programs on the same hosts (the image's scripts, the metrics publisher).
OTHER_EXECUTOR_PREFIXES = ("EXECUTOR_METRIC_",)
OTHER_EXECUTOR_NAMES = ("EXECUTOR_DOCKER_DAEMON_JSON", "EXECUTOR_MANAGED", "EXECUTOR_POWEROFF_COMMAND",
                        "EXECUTOR_ALLOCATIONS", "EXECUTOR_STARTUP_ROOT", "EXECUTOR_TEST_VM_IMAGE")  # fmt: skip


def unknown_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """One warning per EXECUTOR_* variable nothing reads, with the closest known name (a misspelling is likely)."""
    return settings_common.unknown_variables(
        environ,
        prefix="EXECUTOR_",
        known=[str(f.validation_alias) for f in ExecutorSettings.model_fields.values() if f.validation_alias],
        what="an executor setting",
        program="executor: ",
        read_elsewhere=OTHER_EXECUTOR_NAMES,
        read_elsewhere_prefixes=OTHER_EXECUTOR_PREFIXES,
    )


def make_executor_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4()}"
