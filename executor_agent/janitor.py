"""Periodic cleanup: containers, workspaces and host processes that no live job owns (left by a crash or kill -9).

The first sweep runs as the agent starts, so what a `kill -9`ed executor left is gone before the next job runs.
Workspaces are kept with EXECUTOR_KEEP_WORKSPACES; the step processes left in them are killed all the same.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from executor_agent.runtimes.base import SANDBOX_ENV, Runtime, pid_alive
from executor_agent.workspace import OWNER_FILE

log = logging.getLogger(__name__)


def stale_workspaces(root: Path, prefix: str, executor_name: str, is_active: Callable[[int], bool]) -> list[Path]:
    """Workspace directories of jobs this executor no longer runs, or of executors on this host that died."""
    hostname = socket.gethostname()
    stale = []
    for job_dir in root.glob(f"{prefix}-*"):
        try:
            owner = json.loads((job_dir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if owner.get("executorName") == executor_name:
            if not is_active(int(owner.get("jobId", 0))):
                stale.append(job_dir)
        elif owner.get("hostname") == hostname and not pid_alive(int(owner.get("pid", 0))):
            stale.append(job_dir)
    return stale


def kill_processes_in(job_dir: Path, by_cwd: bool = True) -> list[int]:
    """SIGKILL the host processes a dead job left running: those whose environment names the job directory (every
    host step carries SANDBOX_ENV, wherever it moved its working directory) and, with by_cwd, every process whose
    working directory is inside it (a clone the killed executor had started)."""
    root = str(job_dir.resolve())
    marker = f"{SANDBOX_ENV}={job_dir.name}".encode()
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours to look at
        inside = by_cwd and (cwd == root or cwd.startswith(root + "/"))
        if inside or marker in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


class Janitor:
    def __init__(
        self,
        runtime: Runtime,
        root: Path,
        prefix: str,
        executor_name: str,
        interval: float,
        keep_workspaces: bool,
        active_jobs: Callable[[], set[int]],
    ) -> None:
        self.runtime = runtime
        self.root = root
        self.prefix = prefix
        self.executor_name = executor_name
        self.interval = interval
        self.keep_workspaces = keep_workspaces
        self.active_jobs = active_jobs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="janitor", daemon=True)

    def sweep(self) -> list[str]:
        def is_active(job_id: int) -> bool:
            return job_id in self.active_jobs()

        removed = self.runtime.remove_orphans(is_active)
        for job_dir in stale_workspaces(self.root, self.prefix, self.executor_name, is_active):
            # A kept workspace keeps its files, not the step processes a dead job left (an operator's shell in it
            # is left alone: only processes carrying the step marker are killed there).
            killed = kill_processes_in(job_dir, by_cwd=not self.keep_workspaces)
            removed += [f"process {pid} of {job_dir}" for pid in killed]
            if not self.keep_workspaces:
                shutil.rmtree(job_dir, ignore_errors=True)
                removed.append(str(job_dir))
        for item in removed:
            log.warning("janitor: removed orphaned %s", item)
        return removed

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception as exc:  # the janitor must survive a Docker Engine restart
                log.warning("janitor: sweep failed: %s", exc)
            if self._stop.wait(self.interval):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
