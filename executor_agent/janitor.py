"""Periodic cleanup: containers and workspaces that no live job owns (left behind by a crash or a kill -9)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from executor_agent.runtimes.base import Runtime, pid_alive
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
        if not self.keep_workspaces:
            for job_dir in stale_workspaces(self.root, self.prefix, self.executor_name, is_active):
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
