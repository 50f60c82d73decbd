"""JobRunner in-process, through the per-job seam: a recording fake runtime (and the real shell runtime) with a fake
server that records log entries and results. No server, no Docker: what is tested is the order of the seam's calls,
what reaches the log and the outcome reported."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from executor_agent.apiclient import ApiClient
from executor_agent.config import ExecutorSettings
from executor_agent.job import JobFailure, StopReason, StopSignal
from executor_agent.jobrunner import JobRunner
from executor_agent.logstream import LogEntry
from executor_agent.protocol.jobs import JobSpec
from executor_agent.runtimes import Runtime
from executor_agent.runtimes.base import StepResult, StepRun
from executor_agent.runtimes.docker import DockerRuntime
from executor_agent.runtimes.shell import ShellRuntime
from executor_agent.workspace import Workspace

TOKEN = "job-token-0123456789"


class FakeJobClient:
    """The entry sink (logstream.EntrySink) and the mark* calls of one job."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def add_log_entry(self, entry: dict[str, Any]) -> int:
        with self.server.lock:
            self.server.entries.append(dict(entry))
            return len(self.server.entries) - 1

    def update_log_entry(self, entry_id: int, entry: dict[str, Any]) -> None:
        with self.server.lock:
            self.server.entries[entry_id] = dict(entry)

    def mark_complete(self) -> None:
        self.server.results.append(("completed", ""))

    def mark_errored(self, message: str) -> None:
        self.server.results.append(("errored", message))

    def mark_failed(self, message: str) -> None:
        self.server.results.append(("failed", message))


@dataclass
class FakeServer:
    executor_name: str = "test-executor"
    entries: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_job(self, job: JobSpec) -> FakeJobClient:
        return FakeJobClient(self)

    def entry(self, key: str) -> dict[str, Any]:
        return next(e for e in self.entries if e["key"] == key)


@dataclass
class Behaviour:
    exit_code: int = 0
    output: bytes = b""
    block: bool = False  # wait for the stop signal, then end as a stopped process does
    raises: Exception | None = None


class FakeSandbox:
    def __init__(self, runtime: FakeRuntime, workspace: Workspace) -> None:
        self.runtime = runtime
        self.workspace = workspace

    def describe(self, step: StepRun) -> list[str]:
        return ["fake", step.kind, *step.commands]

    def run_step(self, step: StepRun, entry: LogEntry, stop: StopSignal) -> StepResult:
        self.runtime.calls.append(f"run {step.kind} {step.key}")
        behaviour = self.runtime.behaviours.get(step.key, Behaviour())
        if behaviour.output:
            entry.write("stdout", behaviour.output)
        if behaviour.raises is not None:
            raise behaviour.raises
        if behaviour.block:
            self.runtime.step_started.set()
            stop.wait()
            return StepResult(143)
        return StepResult(behaviour.exit_code)

    def close(self) -> None:
        self.runtime.calls.append("close")


@dataclass
class FakeRuntime:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    open_raises: Exception | None = None
    name: str = "fake"
    calls: list[str] = field(default_factory=list)
    step_started: threading.Event = field(default_factory=threading.Event)

    def check(self) -> str:
        return "fake 1.0"

    def host_checks(self) -> list[tuple[bool, str]]:
        return [(True, "fake runtime")]

    def open_job(self, job: JobSpec, workspace: Workspace) -> FakeSandbox:
        self.calls.append(f"open {job.id} {workspace.path.is_dir()}")
        if self.open_raises is not None:
            raise self.open_raises
        return FakeSandbox(self, workspace)

    def remove_orphans(self, is_active: Any) -> list[str]:
        return []

    def start_sandbox(self, workspace: Workspace, name: str) -> str:
        return ""


def settings(**env: str) -> ExecutorSettings:
    values = {
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "executor-secret-0123456789",
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "false",
        **env,
    }
    return ExecutorSettings(**values)  # type: ignore[arg-type]


def run_job(
    runtime: Runtime, tmp_path: Path, stop: StopSignal | None = None, env: dict[str, str] | None = None, **job: Any
) -> tuple[str, FakeServer]:
    server = FakeServer()
    runner = JobRunner(settings(**(env or {})), cast(ApiClient, server), runtime, tmp_path / "workspaces")
    (tmp_path / "workspaces").mkdir(exist_ok=True)
    outcome = runner.run({"id": 7, "queue": "batches", "token": TOKEN, **job}, stop or StopSignal())
    return outcome, server


def steps(*keys: str) -> list[dict[str, Any]]:
    return [{"key": k, "image": "busybox", "commands": [f"echo {k}"]} for k in keys]


def test_success_opens_once_runs_docker_then_cli_steps_in_the_sandbox_and_closes(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.a": Behaviour(output=b"hello from a\n")})
    outcome, server = run_job(
        runtime,
        tmp_path,
        env={"EXECUTOR_TRUSTED_QUEUES": "batches"},
        dockerSteps=steps("a", "b"),
        cliSteps=steps("c"),
        files={"in.txt": {"content": "aGk="}},
    )
    assert outcome == "completed"
    assert server.results == [("completed", "")]
    # The workspace (with the files) exists before open_job; cliSteps go through the same sandbox.
    assert runtime.calls == ["open 7 True", "run docker step.docker.a", "run docker step.docker.b",
                             "run cli step.cli.c", "close"]  # fmt: skip
    assert server.entry("step.docker.a")["command"] == ["fake", "docker", "echo a"]
    assert server.entry("step.docker.a")["out"] == "stdout: hello from a\n"
    assert server.entry("step.cli.c")["command"] == ["fake", "cli", "echo c"]
    assert [e["exitCode"] for e in server.entries] == [0] * len(server.entries)
    assert not list((tmp_path / "workspaces").iterdir()), "the workspace is removed after the job"


def test_failing_step_stops_the_job_and_still_closes(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.b": Behaviour(exit_code=3, output=b"it broke\n")})
    outcome, server = run_job(runtime, tmp_path, dockerSteps=steps("a", "b", "c"))
    assert outcome == "errored"
    assert server.results == [("errored", "step.docker.b failed: exit code 3 (see its log entry)")]
    assert runtime.calls == ["open 7 True", "run docker step.docker.a", "run docker step.docker.b", "close"]
    assert server.entry("step.docker.b")["exitCode"] == 3


def test_cancel_mid_step_reports_canceled_and_closes(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.a": Behaviour(block=True)})
    stop = StopSignal()

    def cancel() -> None:
        assert runtime.step_started.wait(60)
        stop.stop(StopReason.CANCELED)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    outcome, server = run_job(runtime, tmp_path, stop=stop, dockerSteps=steps("a", "b"))
    canceller.join()
    assert outcome == "canceled"
    assert server.results == [("failed", "job was canceled")]  # the server records a pending cancel as canceled
    assert runtime.calls == ["open 7 True", "run docker step.docker.a", "close"]
    assert server.entry("step.docker.a")["exitCode"] == 143


def test_maximum_runtime_stops_the_step_and_errors_the_job(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.a": Behaviour(block=True)})
    outcome, server = run_job(
        runtime, tmp_path, env={"EXECUTOR_MAXIMUM_RUNTIME_PER_JOB": "1s"}, dockerSteps=steps("a", "b")
    )
    assert outcome == "errored"
    assert server.results == [("errored", "job exceeded maximum execution time of 1s")]
    assert runtime.calls == ["open 7 True", "run docker step.docker.a", "close"]


def test_a_step_that_raises_still_closes_the_sandbox(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.a": Behaviour(raises=OSError("disk on fire"))})
    outcome, server = run_job(runtime, tmp_path, dockerSteps=steps("a", "b"))
    assert outcome == "errored"
    assert server.results == [("errored", "executor error: OSError: disk on fire")]
    assert runtime.calls == ["open 7 True", "run docker step.docker.a", "close"]


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (JobFailure("the VM did not boot", retryable=True), ("errored", "the VM did not boot")),
        (JobFailure("bad image", retryable=False), ("failed", "bad image")),
        (RuntimeError("monitor crashed"), ("errored", "executor error: RuntimeError: monitor crashed")),
    ],
)
def test_open_job_failure_runs_no_step_and_removes_the_workspace(
    tmp_path: Path, error: Exception, result: tuple[str, str]
) -> None:
    runtime = FakeRuntime(open_raises=error)
    outcome, server = run_job(runtime, tmp_path, dockerSteps=steps("a"))
    assert server.results == [result] and outcome == result[0]
    # No sandbox was returned, so there is nothing to close: open_job frees what it made before raising.
    assert runtime.calls == ["open 7 True"]
    assert not list((tmp_path / "workspaces").iterdir())


def test_secret_in_step_output_is_redacted_before_it_reaches_the_server(tmp_path: Path) -> None:
    runtime = FakeRuntime({"step.docker.a": Behaviour(output=f"token {TOKEN} and s3cr3t-value\n".encode())})
    outcome, server = run_job(runtime, tmp_path, dockerSteps=steps("a"), redactedValues={"s3cr3t-value": "[SECRET]"})
    assert outcome == "completed"
    out = server.entry("step.docker.a")["out"]
    assert TOKEN not in out and "s3cr3t-value" not in out and "[SECRET]" in out


def test_real_shell_runtime_runs_docker_and_cli_steps_on_the_workspace(tmp_path: Path) -> None:
    env = {"EXECUTOR_RUNTIME": "shell", "EXECUTOR_TRUSTED_QUEUES": "batches", "EXECUTOR_JOB_MEMORY": "0"}
    shell = ShellRuntime(settings(**env), "test-executor")
    outcome, server = run_job(
        shell,
        tmp_path,
        env=env,
        dockerSteps=[{"image": "busybox", "commands": ["mkdir sub", "echo one > sub/handover"]}],
        cliSteps=[{"key": "read", "dir": "sub", "commands": ["cat handover", "basename $PWD"]}],
    )
    assert outcome == "completed", server.entries
    assert server.entry("step.cli.read")["out"] == "stdout: one\nstdout: sub\n"
    assert server.entry("step.cli.read")["command"][:2] == ["/bin/sh", "-c"]


def test_docker_runtime_refuses_cli_steps_of_an_untrusted_queue_before_any_step(tmp_path: Path) -> None:
    # No Engine is needed: the refusal comes before any container (DOCKER_HOST points nowhere).
    docker_runtime = DockerRuntime(settings(DOCKER_HOST="unix:///nonexistent/docker.sock"), "test-executor")
    outcome, server = run_job(docker_runtime, tmp_path, dockerSteps=steps("a"), cliSteps=steps("b"))
    assert outcome == "failed"
    assert server.results[0][1].startswith("cliSteps run unisolated on the executor host and queue 'batches'")
    assert not any(e["key"].startswith("step.") for e in server.entries)
