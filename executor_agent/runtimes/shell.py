"""Steps as plain processes on this host, for hosts without Docker; also how cliSteps run beside Docker steps.

NOT ISOLATED: a step can read and change anything the executor's user can. Only queues listed in
EXECUTOR_TRUSTED_QUEUES are served with this runtime (the configuration refuses anything else). The step's image is
ignored; commands run with /bin/sh in the workspace, in their own process group, with the memory limit as an
address-space rlimit. Every step process carries SANDBOX_ENV naming its job directory, so the janitor of the next
executor finds what a killed one left running, wherever the step moved its working directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from executor_agent.config import ExecutorSettings
from executor_agent.job import JobFailure, StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.protocol.jobs import JobSpec
from executor_agent.runtimes.base import SANDBOX_ENV, RuntimeUnavailable, StepResult, StepRun, run_host_command
from executor_agent.workspace import Workspace

BASE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")


def step_env(step: StepRun, workspace: Workspace) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV_NAMES if k in os.environ}
    env["DATA"] = str(workspace.path)
    for item in step.env:
        name, _, value = item.partition("=")
        env[name] = value
    env[SANDBOX_ENV] = workspace.job_dir.name
    return env


def host_argv(step: StepRun) -> list[str]:
    return ["/bin/sh", "-c", step.script()]


def run_on_host(
    step: StepRun, workspace: Workspace, entry: LogEntry, stop: StopSignal, memory_limit: int
) -> StepResult:
    """One step as a host process in the workspace (the shell runtime's steps, and cliSteps of the Docker runtime)."""
    if step.image:
        entry.note(f"image {step.image!r} is ignored: the step runs on the executor host, not isolated")
    relative = step.dir.strip("/")
    cwd = workspace.path / relative if relative and relative != "." else workspace.path
    if not cwd.is_dir():
        message = f"step directory {step.dir!r} does not exist in the workspace"
        entry.note(message)
        return StepResult(1, message)
    env = step_env(step, workspace)
    return StepResult(run_host_command(host_argv(step), cwd, entry, stop, env=env, memory_limit=memory_limit))


def refuse_untrusted_cli_steps(settings: ExecutorSettings, job: JobSpec) -> None:
    """cliSteps run on the host beside a container runtime: only for queues the operator trusts."""
    if job.cliSteps and not settings.trusts(job.queue):
        raise JobFailure(
            f"cliSteps run unisolated on the executor host and queue {job.queue!r} is not in "
            "EXECUTOR_TRUSTED_QUEUES; use dockerSteps or trust the queue on this executor",
            retryable=False,
        )


class HostSandbox:
    """A job's steps as host processes: nothing to set up, nothing to free (the janitor kills leftovers)."""

    def __init__(self, settings: ExecutorSettings, workspace: Workspace) -> None:
        self.settings = settings
        self.workspace = workspace

    def describe(self, step: StepRun) -> list[str]:
        return host_argv(step)

    def run_step(self, step: StepRun, entry: LogEntry, stop: StopSignal) -> StepResult:
        return run_on_host(step, self.workspace, entry, stop, self.settings.job_memory)

    def close(self) -> None:
        # Each step's process group is stopped when the step ends or is stopped; nothing else is held.
        pass


class ShellRuntime:
    name = "shell"

    def __init__(self, settings: ExecutorSettings, executor_name: str) -> None:
        self.settings = settings
        self.executor_name = executor_name

    def check(self) -> str:
        if shutil.which("sh") is None:
            raise RuntimeUnavailable("no /bin/sh on PATH; the shell runtime needs a POSIX shell")
        return "shell (not isolated)"

    def host_checks(self) -> list[tuple[bool, str]]:
        try:
            self.check()
        except RuntimeUnavailable as exc:
            return [(False, f"runtime shell: {exc}")]
        return [(True, "runtime shell: jobs run NOT isolated, for EXECUTOR_TRUSTED_QUEUES only")]

    def open_job(self, job: JobSpec, workspace: Workspace) -> HostSandbox:
        return HostSandbox(self.settings, workspace)

    def remove_orphans(self, is_active: Callable[[int], bool]) -> list[str]:
        # Host processes are found through their workspaces: the janitor kills them with the workspace.
        return []

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        # No sandbox exists without isolation: the "attach" command is a shell in the workspace.
        return f"cd {workspace.path} && sh   # shell runtime: not isolated; remove with: rm -rf {workspace.job_dir}"
