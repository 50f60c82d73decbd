"""Helpers of the microVM tests: settings, VM assets made once, a network namespace, and a job driver that calls
the job runner in-process with the real VM runtime and an in-memory entry sink."""

from __future__ import annotations

import io
import secrets
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import docker

from executor_agent.apiclient import ApiClient
from executor_agent.config import ExecutorSettings
from executor_agent.jobrunner import JobRunner
from executor_agent.protocol.jobs import JobSpec
from executor_agent.runtimes import Runtime
from executor_agent.runtimes.vm import VMRuntime
from executor_agent.vm.assets import find_kernel, install_vm, module_files
from tests.support.docker_engine import busybox_rootfs_tar

INSTALL = "apt-get install -y --no-install-recommends qemu-system-x86 linux-image-cloud-amd64 busybox-static"
MARKER_IMAGE = "vmtest/marker:1"
KERNEL_IMAGE = "vmtest/kernel:1"


def require_tools() -> None:
    missing = [t for t in ("qemu-system-x86_64", "mkfs.ext4", "debugfs", "iptables", "ip") if not shutil.which(t)]
    kernels = list(Path("/boot").glob("vmlinuz-*"))
    if missing or not kernels:
        raise RuntimeError(f"missing {missing or 'a kernel in /boot'}; {INSTALL} (or `make test`)")


def vm_settings(assets_dir: Path, work: Path, docker_host: str, **env: str) -> ExecutorSettings:
    values = {
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "pw" * 10,
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


def import_kernel_image(client: docker.DockerClient) -> str:
    """An image carrying the host's newest kernel as /boot/vmlinuz-<version> and, of /lib/modules/<version>, the
    modules the guest loads (EXECUTOR_FIRECRACKER_KERNEL_IMAGE as a local Docker image); returns the version."""
    kernel, modules_dir = find_kernel("")
    version = modules_dir.name
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(kernel, arcname=f"boot/{kernel.name}")
        tar.add(modules_dir / "modules.dep", arcname=f"lib/modules/{version}/modules.dep")
        for module in module_files(modules_dir):
            tar.add(module, arcname=f"lib/modules/{version}/{module.relative_to(modules_dir)}")
    repository, _, tag = KERNEL_IMAGE.partition(":")
    client.api.import_image_from_data(out.getvalue(), repository=repository, tag=tag)
    return version


def netns() -> Iterator[str]:
    name = f"vmt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Sink:
    """The job's entry sink and mark* calls, in memory (logstream.EntrySink)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.results: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add_log_entry(self, entry: dict[str, Any]) -> int:
        with self.lock:
            self.entries.append(dict(entry))
            return len(self.entries) - 1

    def update_log_entry(self, entry_id: int, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries[entry_id] = dict(entry)

    def mark_complete(self) -> None:
        self.results.append(("completed", ""))

    def mark_errored(self, message: str) -> None:
        self.results.append(("errored", message))

    def mark_failed(self, message: str) -> None:
        self.results.append(("failed", message))

    def entry(self, key: str) -> dict[str, Any]:
        with self.lock:
            return next(e for e in self.entries if e["key"] == key)

    def out(self, key: str) -> str:
        with self.lock:
            found = [e for e in self.entries if e["key"] == key]
        return str(found[0].get("out", "")) if found else ""

    def stdout(self, key: str) -> list[str]:
        return [line.removeprefix("stdout: ") for line in self.out(key).splitlines() if line.startswith("stdout: ")]


@dataclass
class FakeApi:
    sink: Sink = field(default_factory=Sink)
    executor_name: str = "test-executor"

    def for_job(self, job: JobSpec) -> Sink:
        return self.sink


def job_runner(runtime: VMRuntime, root: Path) -> tuple[JobRunner, Sink]:
    api = FakeApi()
    return JobRunner(runtime.settings, cast(ApiClient, api), cast(Runtime, runtime), root), api.sink


def vm_name(sink: Sink, key: str) -> str:
    """The VM's name, from the step's log entry (describe: `vm <name> ...`)."""
    return str(sink.entry(key)["command"][1])


def qemu_alive(name: str) -> bool:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if name.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def raw_job(**spec: Any) -> dict[str, Any]:
    return {"id": 7, "queue": "batches", "token": "tok", **spec}
