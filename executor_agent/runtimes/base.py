"""The per-job runtime seam (docs/executor.md, "Runtimes"), and running a command on the host with the same stop
behaviour as a container."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from executor_agent.job import StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.protocol.jobs import JobSpec
from executor_agent.workspace import Workspace

# A stopped step gets SIGTERM, then SIGKILL after this many seconds (as `docker stop` does).
STOP_GRACE_SECONDS = 10.0
LABEL_PREFIX = "executor-fleet"
# In the environment of every host step process: the name of its job directory (see janitor.py).
SANDBOX_ENV = "EXECUTORFLEET_SANDBOX"  # not EXECUTOR_*: steps see none of the agent's settings


class RuntimeUnavailable(Exception):
    """The runtime cannot run jobs on this host; the message says what to install or configure."""


@dataclass
class StepRun:
    key: str  # e.g. "step.docker.0", "step.cli.build"
    image: str
    commands: list[str]
    dir: str  # relative to the workspace ("" or "." = workspace root), already checked
    env: list[str]  # "K=V"
    job_id: int
    kind: str = "docker"  # "docker" for dockerSteps, "cli" for cliSteps
    secrets: list[str] = field(default_factory=list)

    def script(self) -> str:
        # `set -e`: a failing command fails the step instead of being hidden by the next one.
        return "set -e\n" + "\n".join(self.commands) + "\n"


@dataclass
class StepResult:
    exit_code: int
    message: str = ""  # why the step ended abnormally ("killed: out of memory (limit 1G)", ...)


class JobSandbox(Protocol):
    """One job's sandbox: a set of containers, a host directory, or one VM. Opened once per job."""

    def describe(self, step: StepRun) -> list[str]:
        """The command line shown in the step's log entry."""
        ...

    def run_step(self, step: StepRun, entry: LogEntry, stop: StopSignal) -> StepResult:
        """Run one step to its end (or until stop is set), writing its raw output into entry."""
        ...

    def close(self) -> None:
        """Free everything the sandbox holds. Always called (in `finally`), also after a failure; idempotent."""
        ...


class Runtime(Protocol):
    name: str  # "docker" | "shell" | "firecracker"

    def check(self) -> str:
        """Version of the runtime; raises RuntimeUnavailable."""
        ...

    def host_checks(self) -> list[tuple[bool, str]]:
        """`executor validate` lines: (ok, "what was checked" or "what is wrong (fix: ...)")."""
        ...

    def open_job(self, job: JobSpec, workspace: Workspace) -> JobSandbox:
        """The job's sandbox on its prepared workspace (cloned, files written); may raise JobFailure or
        RuntimeUnavailable."""
        ...

    def remove_orphans(self, is_active: Callable[[int], bool]) -> list[str]:
        """Remove sandboxes no live job owns; returns what was removed.

        is_active is asked at the moment of each decision: a job that starts during the sweep is not an orphan."""
        ...

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        """Start a long-lived sandbox on the workspace (for `executor test-vm`); returns how to attach and remove it."""
        ...


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_host_command(
    argv: list[str],
    cwd: Path,
    entry: LogEntry,
    stop: StopSignal,
    env: dict[str, str] | None = None,
    memory_limit: int = 0,
) -> int:
    """Run argv in its own process group, streaming output into entry; stop → SIGTERM, SIGKILL after grace."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=limits,
        )
    except OSError as exc:
        entry.note(f"could not start {argv[0]}: {exc}")
        return 127
    readers = [_pump(proc.stdout, "stdout", entry), _pump(proc.stderr, "stderr", entry)]
    stopper = _on_stop(stop, lambda sig: _signal_group(proc, sig), lambda: proc.poll() is not None)
    proc.wait()
    stopper.set()
    for reader in readers:
        reader.join()
    return exit_status(proc.returncode)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _pump(pipe: IO[bytes] | None, stream: str, entry: LogEntry) -> threading.Thread:
    def run() -> None:
        assert pipe is not None
        while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
            entry.write(stream, chunk)
        pipe.close()

    thread = threading.Thread(target=run, name=f"pump-{stream}", daemon=True)
    thread.start()
    return thread


def _on_stop(stop: StopSignal, send: Callable[[int], None], finished: Callable[[], bool]) -> threading.Event:
    """Watch the stop signal while a command runs: SIGTERM, then SIGKILL after STOP_GRACE_SECONDS."""
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            if stop.wait(0.1):
                send(signal.SIGTERM)
                deadline = time.monotonic() + STOP_GRACE_SECONDS
                while not done.is_set() and not finished() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not done.is_set() and not finished():
                    send(signal.SIGKILL)
                return

    threading.Thread(target=run, name="stop-watch", daemon=True).start()
    return done


def pid_alive(pid: int) -> bool:
    """Whether pid is a live process. A zombie is dead: a killed executor nobody has reaped yet owns nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs to ask: trust the signal
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])
