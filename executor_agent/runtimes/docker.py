"""Steps in Docker containers through the Engine API (honours DOCKER_HOST), one container per step.

Containers carry labels naming the executor, its process and the job, so the janitor of this or a later
executor on the same host can remove what a crashed one left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from executor_agent.config import ExecutorSettings
from executor_agent.durations import format_size
from executor_agent.job import StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.runtimes.base import (
    LABEL_PREFIX,
    STOP_GRACE_SECONDS,
    RuntimeUnavailable,
    StepResult,
    StepRun,
    _on_stop,
    pid_alive,
)
from executor_agent.workspace import Workspace

log = logging.getLogger(__name__)
API_VERSION = "1.41"
L_PREFIX = f"{LABEL_PREFIX}.prefix"
L_EXECUTOR = f"{LABEL_PREFIX}.executor"
L_HOST = f"{LABEL_PREFIX}.hostname"
L_PID = f"{LABEL_PREFIX}.pid"
L_JOB = f"{LABEL_PREFIX}.job"
L_STARTED = f"{LABEL_PREFIX}.started"


class DockerRuntime:
    name = "docker"

    def __init__(self, settings: ExecutorSettings, executor_name: str) -> None:
        self.settings = settings
        self.executor_name = executor_name
        self.hostname = socket.gethostname()
        base_url = settings.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.base_url = base_url
        self._host_cpus: int | None = None
        # A fixed API version: the client is made before the daemon is known to answer (check() reports that).
        self.client = docker.DockerClient(base_url=base_url, version=API_VERSION, timeout=120)

    def check(self) -> str:
        try:
            return str(self.client.version().get("Version", "unknown"))
        except Exception as exc:  # the SDK raises requests/urllib3/docker errors alike here
            raise RuntimeUnavailable(
                f"Docker Engine at {self.base_url} does not answer ({type(exc).__name__}: {exc}); "
                "start dockerd (`executor install docker` installs it) or point DOCKER_HOST at it"
            ) from None

    def _host_path(self, workspace: Workspace) -> str:
        if self.settings.docker_host_mount_path:
            return str(Path(self.settings.docker_host_mount_path) / workspace.job_dir.name / "workspace")
        return str(workspace.path)

    def _labels(self, job_id: int) -> dict[str, str]:
        return {
            L_PREFIX: self.settings.vm_prefix,
            L_EXECUTOR: self.executor_name,
            L_HOST: self.hostname,
            L_PID: str(os.getpid()),
            L_JOB: str(job_id),
            L_STARTED: str(int(time.time())),
        }

    def _cpus(self) -> float:
        """EXECUTOR_JOB_NUM_CPUS, capped at what the Docker host has (the Engine refuses more)."""
        if self._host_cpus is None:
            try:
                self._host_cpus = int(self.client.info().get("NCPU") or 0)
            except Exception:  # reported by check(); do not cap what we cannot measure
                self._host_cpus = 0
            if self._host_cpus and self.settings.job_num_cpus > self._host_cpus:
                log.warning(
                    "EXECUTOR_JOB_NUM_CPUS=%g but the Docker host has %d CPUs; jobs get %d",
                    self.settings.job_num_cpus, self._host_cpus, self._host_cpus,
                )  # fmt: skip
        wanted = self.settings.job_num_cpus
        return min(wanted, self._host_cpus) if self._host_cpus else wanted

    def _resources(self) -> dict[str, Any]:
        res: dict[str, Any] = {}
        if self.settings.job_num_cpus > 0:
            res["nano_cpus"] = int(self._cpus() * 1e9)
        if self.settings.job_memory > 0:
            # Equal swap limit: the job gets exactly this much memory, not this much plus swap.
            res["mem_limit"] = self.settings.job_memory
            res["memswap_limit"] = self.settings.job_memory
        return res

    def describe(self, step: StepRun, workspace: Workspace) -> list[str]:
        argv = ["docker", "run", "--rm"]
        if self.settings.job_num_cpus > 0:
            argv += ["--cpus", f"{self._cpus():g}"]
        if self.settings.job_memory > 0:
            argv += ["--memory", format_size(self.settings.job_memory)]
        argv += ["-v", f"{self._host_path(workspace)}:/data", "-w", _workdir(step.dir)]
        for item in step.env:
            argv += ["-e", item]
        return [*argv, "--entrypoint", "/bin/sh", step.image, "-c", step.script()]

    def _ensure_image(self, image: str, auth: dict[str, Any] | None) -> str:
        try:
            self.client.images.get(image)
            return ""
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.pull(image, auth_config=auth or None)
        except docker.errors.APIError as exc:
            return f"image {image!r} is not available: not present locally and pulling it failed: {_explain(exc)}"
        return ""

    def _create(self, step: StepRun, workspace: Workspace, name: str) -> str:
        # The low-level API: the high-level one inspects every container it creates, a round trip per step.
        api = self.client.api
        host_config = api.create_host_config(
            binds={self._host_path(workspace): {"bind": "/data", "mode": "rw"}},
            # An init process forwards SIGTERM to the script, which as PID 1 would ignore it.
            init=True,
            **self._resources(),
        )
        created = api.create_container(
            step.image,
            entrypoint=["/bin/sh", "-c"],
            command=[step.script()],
            working_dir=_workdir(step.dir),
            environment=step.env,
            labels=self._labels(step.job_id),
            name=name,
            host_config=host_config,
        )
        return str(created["Id"])

    def run_step(
        self,
        step: StepRun,
        workspace: Workspace,
        entry: LogEntry,
        stop: StopSignal,
        auth: dict[str, Any] | None = None,
    ) -> StepResult:
        name = f"{self.settings.vm_prefix}-{step.job_id}-{secrets.token_hex(4)}"
        try:
            try:
                container = self._create(step, workspace, name)
            except docker.errors.ImageNotFound:
                problem = self._ensure_image(step.image, auth)
                if problem:
                    entry.note(problem)
                    return StepResult(125, problem)
                container = self._create(step, workspace, name)
        except docker.errors.APIError as exc:
            message = f"could not create the container for {step.key}: {_explain(exc)}"
            entry.note(message)
            return StepResult(125, message)
        try:
            return self._run(container, entry, stop)
        finally:
            try:
                self.client.api.remove_container(container, force=True)
            except docker.errors.APIError as exc:
                log.warning("container %s not removed (the janitor will retry): %s", name, exc)

    def _run(self, container: str, entry: LogEntry, stop: StopSignal) -> StepResult:
        api = self.client.api
        output = api.attach(container, stdout=True, stderr=True, stream=True, logs=True, demux=True)

        def pump() -> None:
            for out, err in output:
                if out:
                    entry.write("stdout", out)
                if err:
                    entry.write("stderr", err)

        reader = threading.Thread(target=pump, name="container-output", daemon=True)
        reader.start()
        api.start(container)
        finished = threading.Event()

        def signal_container(sig: int) -> None:
            with contextlib.suppress(docker.errors.APIError):  # already gone
                api.kill(container, signal=sig)

        watcher = _on_stop(stop, signal_container, finished.is_set)
        try:
            status = api.wait(container)
        finally:
            finished.set()
            watcher.set()
        reader.join(timeout=STOP_GRACE_SECONDS)
        code = int(status.get("StatusCode", 1))
        # Only a failed step can have been killed for memory: the success path skips the extra round trip.
        if code != 0 and api.inspect_container(container).get("State", {}).get("OOMKilled"):
            limit = format_size(self.settings.job_memory)
            message = f"killed: the step used more than its memory limit of {limit} (EXECUTOR_JOB_MEMORY)"
            entry.note(message)
            return StepResult(code, message)
        return StepResult(code)

    def remove_orphans(self, is_active: Callable[[int], bool]) -> list[str]:
        removed = []
        max_age = self.settings.maximum_runtime_per_job + 3600
        mine = {"label": f"{L_PREFIX}={self.settings.vm_prefix}"}
        # The low-level list: the high-level one inspects each container, racing with steps that end meanwhile.
        for container in self.client.api.containers(all=True, filters=mine):
            name = container["Names"][0].lstrip("/")
            if not _is_orphan(container.get("Labels") or {}, self.executor_name, self.hostname, is_active, max_age):
                continue
            try:
                self.client.api.remove_container(container["Id"], force=True)
                removed.append(name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                log.warning("janitor: container %s not removed: %s", name, exc)
        return removed

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        image = os.environ.get("EXECUTOR_TEST_VM_IMAGE", "busybox")
        problem = self._ensure_image(image, None)
        if problem:
            raise RuntimeUnavailable(f"{problem}; set EXECUTOR_TEST_VM_IMAGE to an image present on this host")
        container = self.client.containers.run(
            image,
            command=["sleep", "infinity"],
            detach=True,
            name=name,
            working_dir="/data",
            volumes={self._host_path(workspace): {"bind": "/data", "mode": "rw"}},
            labels={L_PREFIX: f"{self.settings.vm_prefix}-test-vm"},
            **self._resources(),
        )
        host = f"DOCKER_HOST={self.base_url} " if self.base_url else ""
        return f"{host}docker exec -it {container.name} /bin/sh"


def _workdir(relative: str) -> str:
    return "/data/" + relative.strip("/") if relative.strip("/") else "/data"


def _is_orphan(
    labels: dict[str, str], me: str, hostname: str, is_active: Callable[[int], bool], max_age: float
) -> bool:
    job = int(labels.get(L_JOB, "0") or 0)
    if labels.get(L_EXECUTOR) == me:
        return not is_active(job)
    if labels.get(L_HOST) == hostname:
        pid = int(labels.get(L_PID, "0") or 0)
        return not pid or not pid_alive(pid)
    # Another host's executor: only a container far older than any job may live is certainly abandoned.
    started = int(labels.get(L_STARTED, "0") or 0)
    return bool(started) and time.time() - started > max_age


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
