"""Steps in Docker containers through the Engine API (honours DOCKER_HOST), one container per step.

Containers carry labels naming the executor, its process and the job, so the janitor of this or a later
executor on the same host can remove what a crashed one left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
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
from executor_agent.job import StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.protocol.durations import format_size
from executor_agent.protocol.jobs import JobSpec
from executor_agent.runtimes.base import (
    LABEL_PREFIX,
    STOP_GRACE_SECONDS,
    RuntimeUnavailable,
    StepResult,
    StepRun,
    _on_stop,
    pid_alive,
)
from executor_agent.runtimes.shell import host_argv, refuse_untrusted_cli_steps, run_on_host
from executor_agent.workspace import Workspace

log = logging.getLogger(__name__)
API_VERSION = "1.41"
L_PREFIX = f"{LABEL_PREFIX}.prefix"
L_EXECUTOR = f"{LABEL_PREFIX}.executor"
L_HOST = f"{LABEL_PREFIX}.hostname"
L_PID = f"{LABEL_PREFIX}.pid"
L_JOB = f"{LABEL_PREFIX}.job"
L_STARTED = f"{LABEL_PREFIX}.started"
# A build forks compilers and test runners, but a fork bomb must not exhaust the host's process table.
STEP_PIDS_LIMIT = 4096
# Docker's default set minus what a build step does not need: MKNOD (device nodes), NET_RAW (raw sockets, ARP and
# ICMP spoofing), SYS_CHROOT, SETPCAP, SETFCAP (granting file capabilities) and AUDIT_WRITE.
STEP_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE")


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

    def host_checks(self) -> list[tuple[bool, str]]:
        try:
            version = self.check()
        except RuntimeUnavailable as exc:
            return [(False, f"runtime docker: {exc}")]
        try:
            info = self.client.info()
        except Exception as exc:  # the SDK raises requests/urllib3/docker errors alike here
            return [(False, f"runtime docker: Docker Engine {version} answers but not its info: {exc}")]
        checks = [(True, f"runtime docker: Docker Engine {version} answers")]
        if info.get("PidsLimit") is False:
            checks.append((False, (
                f"step limits: this kernel has no pids cgroup, so steps are not held to {STEP_PIDS_LIMIT} processes "
                "(fix: enable the pids controller, e.g. a kernel with CONFIG_CGROUP_PIDS and cgroup v2)"
            )))  # fmt: skip
        else:
            checks.append((True, f"step limits: at most {STEP_PIDS_LIMIT} processes, no-new-privileges, reduced caps"))
        mirror = self.settings.docker_registry_mirror_url
        if mirror:
            mirrors = [m.rstrip("/") for m in (info.get("RegistryConfig") or {}).get("Mirrors") or []]
            if mirror.rstrip("/") in mirrors:
                checks.append((True, f"registry mirror {mirror} configured in the Docker Engine"))
            else:
                checks.append((False, (
                    f"registry mirror: EXECUTOR_DOCKER_REGISTRY_MIRROR_URL={mirror} is not among the daemon's "
                    f"mirrors {mirrors}; run `executor install docker-config` and restart dockerd"
                )))  # fmt: skip
        return checks

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

    def _security(self) -> dict[str, Any]:
        """What a step container may not do (docs/executor.md, "What a Docker step may do")."""
        return {
            "pids_limit": STEP_PIDS_LIMIT,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "cap_add": list(STEP_CAPABILITIES),
        }

    def describe(self, step: StepRun, workspace: Workspace) -> list[str]:
        argv = ["docker", "run", "--rm", "--init"]
        if self.settings.job_num_cpus > 0:
            argv += ["--cpus", f"{self._cpus():g}"]
        if self.settings.job_memory > 0:
            argv += ["--memory", format_size(self.settings.job_memory)]
        argv += ["--pids-limit", str(STEP_PIDS_LIMIT), "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
        for cap in STEP_CAPABILITIES:
            argv += ["--cap-add", cap]
        argv += ["-v", f"{self._host_path(workspace)}:/data", "-w", _workdir(step.dir)]
        for item in step.env:
            argv += ["-e", item]
        return [*argv, "--entrypoint", "/bin/sh", step.image, "-c", step.script()]

    def image_present(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def ensure_image(self, image: str, auth: dict[str, Any] | None) -> str:
        """Pull the image unless present; returns why it is not available ("" when it is)."""
        if self.image_present(image):
            return ""
        try:
            self.client.images.pull(image, auth_config=auth or None)
        except docker.errors.APIError as exc:
            return f"image {image!r} is not available: not present locally and pulling it failed: {_explain(exc)}"
        return ""

    def create_container(self, step: StepRun, workspace: Workspace, name: str) -> str:
        # The low-level API: the high-level one inspects every container it creates, a round trip per step.
        api = self.client.api
        host_config = api.create_host_config(
            binds={self._host_path(workspace): {"bind": "/data", "mode": "rw"}},
            # An init process forwards SIGTERM to the script, which as PID 1 would ignore it.
            init=True,
            **self._resources(),
            **self._security(),
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

    def remove_container(self, container: str, name: str) -> bool:
        try:
            self.client.api.remove_container(container, force=True)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            log.warning("container %s not removed (the janitor will retry): %s", name, exc)
            return False
        return True

    def run_container(self, container: str, entry: LogEntry, stop: StopSignal) -> StepResult:
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

    def open_job(self, job: JobSpec, workspace: Workspace) -> DockerSandbox:
        refuse_untrusted_cli_steps(self.settings, job)
        return DockerSandbox(self, workspace, job.dockerAuthConfig or None)

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
        # No pull: on a host without the image a pull would go to the internet (or hang on a closed network).
        if not self.image_present(image):
            raise RuntimeUnavailable(
                f"image {image!r} is not present in the Docker Engine at {self.base_url}; load it first "
                f"(`docker pull {image}` through your mirror, or `docker load`) or set EXECUTOR_TEST_VM_IMAGE "
                "to an image this host has"
            )
        container = self.client.containers.run(
            image,
            command=["sleep", "infinity"],
            detach=True,
            name=name,
            working_dir="/data",
            volumes={self._host_path(workspace): {"bind": "/data", "mode": "rw"}},
            labels={L_PREFIX: f"{self.settings.vm_prefix}-test-vm"},
            init=True,
            **self._resources(),
            **self._security(),
        )
        host = f"DOCKER_HOST={self.base_url} " if self.base_url else ""
        return (
            f"{host}docker exec -it {container.name} /bin/sh\n"
            f"Remove it with:\n  {host}docker rm -f {container.name} && rm -rf {workspace.job_dir}"
        )


class DockerSandbox:
    """A job's Docker steps, one container each, all on the job's workspace; cliSteps run on the host."""

    def __init__(self, runtime: DockerRuntime, workspace: Workspace, auth: dict[str, Any] | None) -> None:
        self.runtime = runtime
        self.workspace = workspace
        self.auth = auth
        self._containers: dict[str, str] = {}  # id -> name, until removed
        self._lock = threading.Lock()

    def describe(self, step: StepRun) -> list[str]:
        if step.kind == "cli":
            return host_argv(step)
        return self.runtime.describe(step, self.workspace)

    def run_step(self, step: StepRun, entry: LogEntry, stop: StopSignal) -> StepResult:
        if step.kind == "cli":
            return run_on_host(step, self.workspace, entry, stop, self.runtime.settings.job_memory)
        rt = self.runtime
        name = f"{rt.settings.vm_prefix}-{step.job_id}-{secrets.token_hex(4)}"
        try:
            try:
                container = rt.create_container(step, self.workspace, name)
            except docker.errors.ImageNotFound:
                problem = rt.ensure_image(step.image, self.auth)
                if problem:
                    entry.note(problem)
                    return StepResult(125, problem)
                container = rt.create_container(step, self.workspace, name)
        except docker.errors.APIError as exc:
            message = f"could not create the container for {step.key}: {_explain(exc)}"
            entry.note(message)
            return StepResult(125, message)
        with self._lock:
            self._containers[container] = name
        try:
            return rt.run_container(container, entry, stop)
        finally:
            self._remove(container)

    def _remove(self, container: str) -> None:
        with self._lock:
            name = self._containers.get(container, container)
        if self.runtime.remove_container(container, name):
            with self._lock:
                self._containers.pop(container, None)

    def close(self) -> None:
        # Containers of steps that ended are removed at once; this catches one whose removal failed.
        with self._lock:
            left = list(self._containers)
        for container in left:
            self._remove(container)


def _workdir(relative: str) -> str:
    # "", "." and "./" are the workspace itself; the path was checked to stay inside it.
    return posixpath.normpath(posixpath.join("/data", relative.strip("/") or "."))


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
