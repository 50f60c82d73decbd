"""Runtimes run a job's steps: `docker` (containers through the Engine API) or `shell` (host processes)."""

from __future__ import annotations

from executor_agent.config import FIRECRACKER_UNAVAILABLE, ExecutorSettings, RuntimeName
from executor_agent.runtimes.base import Runtime, RuntimeUnavailable


def make_runtime(settings: ExecutorSettings, executor_name: str) -> Runtime:
    if settings.runtime == RuntimeName.DOCKER:
        from executor_agent.runtimes.docker import DockerRuntime

        return DockerRuntime(settings, executor_name)
    if settings.runtime == RuntimeName.SHELL:
        from executor_agent.runtimes.shell import ShellRuntime

        return ShellRuntime(settings, executor_name)
    raise RuntimeUnavailable(FIRECRACKER_UNAVAILABLE)


__all__ = ["Runtime", "RuntimeUnavailable", "make_runtime"]
