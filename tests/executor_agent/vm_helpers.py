"""Helpers of the microVM tests: settings, VM assets made once, a network namespace, and a job driver that calls
the runtime exactly as the job runner does (docs/executor.md: open_job, describe/run_step per step, close)."""

from __future__ import annotations

import io
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from executor_agent.config import ExecutorSettings
from executor_agent.job import JobSpec, StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.redaction import Redactor
from executor_agent.runtimes.base import StepResult, StepRun
from executor_agent.runtimes.vm import VMRuntime, step_keys
from executor_agent.vm.assets import install_vm
from tests.support.docker_engine import busybox_rootfs_tar

INSTALL = "apt-get install -y --no-install-recommends qemu-system-x86 linux-image-cloud-amd64 busybox-static"
MARKER_IMAGE = "vmtest/marker:1"


def require_tools() -> None:
    missing = [t for t in ("qemu-system-x86_64", "mkfs.ext4", "debugfs", "iptables", "ip") if not shutil.which(t)]
    kernels = list(Path("/boot").glob("vmlinuz-*"))
    if missing or not kernels:
        raise RuntimeError(f"missing {missing or 'a kernel in /boot'}; {INSTALL} (or `make test`)")


def vm_settings(assets_dir: Path, work: Path, docker_host: str, **env: str) -> ExecutorSettings:
    values = {
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "pw",
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "true",
        "EXECUTOR_VM_BACKEND": "qemu",
        "EXECUTOR_VM_ALLOW_EMULATION": "true",
        "EXECUTOR_VM_ASSETS_DIR": str(assets_dir),
        "EXECUTOR_WORKSPACE_ROOT": str(work),
        "EXECUTOR_JOB_NUM_CPUS": "2",
        "EXECUTOR_JOB_MEMORY": "256M",
        "EXECUTOR_FIRECRACKER_DISK_SPACE": "1G",
        "DOCKER_HOST": docker_host,
        **env,
    }
    return ExecutorSettings(**values)  # type: ignore[arg-type]


def prepare_assets(settings: ExecutorSettings) -> None:
    lines: list[str] = []
    if install_vm(settings, False, lines.append) != 0:
        raise RuntimeError("executor install vm failed: " + " / ".join(lines))


def import_marker_image(client: docker.DockerClient) -> None:
    """A step image other than the base: busybox plus /etc/marker, with an ENV of its own."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(busybox_rootfs_tar())) as src, tarfile.open(fileobj=out, mode="w") as tar:
        for member in src.getmembers():
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = b"marker image\n"
        info = tarfile.TarInfo("etc/marker")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repository, _, tag = MARKER_IMAGE.partition(":")
    client.api.import_image_from_data(
        out.getvalue(), repository=repository, tag=tag, changes=["ENV PATH=/bin IMAGE_ENV=from-image"]
    )


def netns() -> Iterator[str]:
    name = f"vmt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@dataclass
class JobRun:
    entries: dict[str, LogEntry] = field(default_factory=dict)
    results: dict[str, StepResult] = field(default_factory=dict)
    sandbox: Any = None


def run_job(runtime: VMRuntime, job: JobSpec, workspace: Any, stop: StopSignal, run: JobRun | None = None) -> JobRun:
    """What the job runner does with a sandbox; stops at the first failing step, as it does."""
    run = run or JobRun()
    redactor = Redactor(job.redactedValues)
    sandbox = runtime.open_job(job, workspace)
    run.sandbox = sandbox
    steps = job.dockerSteps + job.cliSteps
    try:
        for (key, _image, kind), step in zip(step_keys(job), steps, strict=True):
            if stop.is_set():
                break
            step_run = StepRun(key, step.image, step.commands, step.dir, step.env, job.id, kind=kind)
            entry = LogEntry(key, sandbox.describe(step_run), redactor, 1 << 20)
            run.entries[key] = entry
            result = sandbox.run_step(step_run, entry, stop)
            entry.finish(result.exit_code)
            run.results[key] = result
            if result.exit_code != 0:
                break
    finally:
        sandbox.close()
    return run


def qemu_alive(name: str) -> bool:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if name.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def stdout_lines(entry: LogEntry) -> list[str]:
    return [line.removeprefix("stdout: ") for line in entry.output().splitlines() if line.startswith("stdout: ")]


def json_job(**spec: Any) -> JobSpec:
    return JobSpec.model_validate({"id": 7, "queue": "batches", "token": "tok", **spec})
