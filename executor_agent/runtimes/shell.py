"""Steps as plain processes on this host, for hosts without Docker.

NOT ISOLATED: a step can read and change anything the executor's user can. Only queues listed in
EXECUTOR_TRUSTED_QUEUES are served with this runtime (the configuration refuses anything else). The step's image is
ignored; commands run with /bin/sh in the workspace, in their own process group, with the memory limit as an
address-space rlimit.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from executor_agent.config import ExecutorSettings
from executor_agent.job import StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.runtimes.base import RuntimeUnavailable, StepResult, StepRun, run_host_command
from executor_agent.workspace import Workspace

BASE_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")


def step_env(step: StepRun, workspace: Workspace) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV_NAMES if k in os.environ}
    env["DATA"] = str(workspace.path)
    for item in step.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


class ShellRuntime:
    name = "shell"

    def __init__(self, settings: ExecutorSettings, executor_name: str) -> None:
        self.settings = settings
        self.executor_name = executor_name

    def check(self) -> str:
        sh = shutil.which("sh")
        if sh is None:
            raise RuntimeUnavailable("no /bin/sh on PATH; the shell runtime needs a POSIX shell")
        return "shell (not isolated)"

    def describe(self, step: StepRun, workspace: Workspace) -> list[str]:
        return ["/bin/sh", "-c", step.script()]

    def run_step(
        self, step: StepRun, workspace: Workspace, entry: LogEntry, stop: StopSignal, auth: dict[str, Any] | None = None
    ) -> StepResult:
        if step.image:
            entry.note(f"shell runtime: image {step.image!r} is ignored; the step runs on the host, not isolated")
        cwd = workspace.path / step.dir if step.dir else workspace.path
        if not cwd.is_dir():
            message = f"step directory {step.dir!r} does not exist in the workspace"
            entry.note(message)
            return StepResult(1, message)
        code = run_host_command(
            ["/bin/sh", "-c", step.script()],
            cwd,
            entry,
            stop,
            env=step_env(step, workspace),
            memory_limit=self.settings.job_memory,
        )
        return StepResult(code)

    def remove_orphans(self, is_active: Callable[[int], bool]) -> list[str]:
        # Processes die with their process group when the step is stopped; test-vm sandboxes are the leftovers.
        return []

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        # No sandbox exists without isolation: the "attach" command is a shell in the workspace.
        return f"cd {workspace.path} && sh   # shell runtime: not isolated"
