"""Facts about this host that the heartbeat and `executor validate` report."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version

MIN_GIT = (2, 31)  # GIT_CONFIG_COUNT: the job token reaches git through the environment


def executor_version() -> str:
    try:
        return version("executor-fleet")
    except PackageNotFoundError:
        return "dev"


def git_version() -> tuple[int, ...] | None:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def heartbeat_info(docker_version: str) -> dict[str, str]:
    git = git_version()
    return {
        "os": platform.system().lower(),
        "architecture": platform.machine(),
        "dockerVersion": docker_version,
        "executorVersion": executor_version(),
        "gitVersion": ".".join(map(str, git)) if git else "",
    }
