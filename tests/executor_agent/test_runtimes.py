"""Runtimes against a real Docker Engine (private dockerd) and real host processes."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from docker.models.containers import Container

from executor_agent.config import ExecutorSettings
from executor_agent.job import StopReason, StopSignal
from executor_agent.logstream import LogEntry
from executor_agent.protocol.jobs import JobSpec
from executor_agent.redaction import Redactor
from executor_agent.runtimes.base import Runtime, RuntimeUnavailable, StepResult, StepRun
from executor_agent.runtimes.docker import DockerRuntime
from executor_agent.runtimes.shell import ShellRuntime
from executor_agent.workspace import Workspace, create
from tests.support.docker_engine import DockerEngine

pytestmark = pytest.mark.docker


def make_settings(docker_host: str = "", **env: str) -> ExecutorSettings:
    values = {
        "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
        "EXECUTOR_FRONTEND_PASSWORD": "pw" * 10,
        "EXECUTOR_QUEUE_NAME": "batches",
        "EXECUTOR_USE_FIRECRACKER": "false",
        "EXECUTOR_TRUSTED_QUEUES": "batches",
        "DOCKER_HOST": docker_host,
        **env,
    }
    return ExecutorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = create(tmp_path, "executor", 1, "test-executor")
    (ws.path / "sub").mkdir()
    yield ws


def entry() -> LogEntry:
    return LogEntry("step.docker.0", [], Redactor({}), cap=1 << 20)


def step(*commands: str, image: str = "busybox", dir: str = "", env: list[str] | None = None) -> StepRun:
    return StepRun("step.docker.0", image, list(commands), dir, env or [], job_id=1)


def run_step(runtime: Runtime, run: StepRun, workspace: Workspace, out: LogEntry, stop: StopSignal) -> StepResult:
    """One step through the per-job seam, as JobRunner drives it: open_job, run_step, close."""
    sandbox = runtime.open_job(JobSpec(id=run.job_id, queue="batches"), workspace)
    try:
        return sandbox.run_step(run, out, stop)
    finally:
        sandbox.close()


@pytest.fixture
def docker_runtime(docker_engine: DockerEngine) -> DockerRuntime:
    return DockerRuntime(
        make_settings(docker_engine.host, EXECUTOR_JOB_MEMORY="64M", EXECUTOR_JOB_NUM_CPUS="0.5"), "test-executor"
    )


def test_docker_step_honours_env_dir_cpus_memory_and_mount(docker_runtime: DockerRuntime, workspace: Workspace) -> None:
    (workspace.path / "sub" / "in.txt").write_text("from host\n")
    out = entry()
    result = run_step(
        docker_runtime,
        step(
            "pwd",
            "echo FOO=$FOO",
            "cat in.txt",
            "echo written > out.txt",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
            dir="sub",
            env=["FOO=bar baz"],
        ),
        workspace,
        out,
        StopSignal(),
    )
    out.finish(result.exit_code)
    assert result.exit_code == 0, out.output()
    lines = out.output().splitlines()
    assert lines[:4] == ["stdout: /data/sub", "stdout: FOO=bar baz", "stdout: from host", f"stdout: {64 * 1024**2}"]
    assert lines[4] == "stdout: 50000"  # 0.5 CPU of a 100000us period
    assert (workspace.path / "sub" / "out.txt").read_text() == "written\n"
    assert docker_runtime.client.containers.list(all=True, filters={"label": "executor-fleet.job=1"}) == []


def test_step_over_memory_limit_is_killed_with_a_message(docker_runtime: DockerRuntime, workspace: Workspace) -> None:
    out = entry()
    result = run_step(docker_runtime, step('a=x; while true; do a="$a$a"; done'), workspace, out, StopSignal())
    assert result.exit_code == 137
    assert result.message == "killed: the step used more than its memory limit of 64M (EXECUTOR_JOB_MEMORY)"
    assert result.message in out.output()


def test_failing_command_stops_the_script(docker_runtime: DockerRuntime, workspace: Workspace) -> None:
    out = entry()
    result = run_step(docker_runtime, step("echo before", "false", "echo after"), workspace, out, StopSignal())
    out.finish(result.exit_code)
    assert result.exit_code == 1
    assert "before" in out.output() and "after" not in out.output()


def test_missing_image_is_a_clear_error(docker_runtime: DockerRuntime, workspace: Workspace) -> None:
    out = entry()
    result = run_step(docker_runtime, step("true", image="no-such-image:1.0"), workspace, out, StopSignal())
    assert result.exit_code == 125
    assert result.message.startswith("image 'no-such-image:1.0' is not available: not present locally and pulling")


def test_stop_terminates_the_container_quickly(docker_runtime: DockerRuntime, workspace: Workspace) -> None:
    stop = StopSignal()
    threading.Timer(1.0, stop.stop, args=(StopReason.CANCELED,)).start()
    began = time.monotonic()
    result = run_step(docker_runtime, step("echo started", "sleep 300"), workspace, entry(), stop)
    assert time.monotonic() - began < 8, "SIGTERM should end the step without waiting for SIGKILL"
    assert result.exit_code != 0
    assert docker_runtime.client.containers.list(all=True, filters={"label": "executor-fleet.job=1"}) == []


def test_janitor_removes_containers_of_dead_executors_only(docker_runtime: DockerRuntime) -> None:
    client = docker_runtime.client

    def container(executor: str, pid: int, job: int) -> Container:
        labels = {
            "executor-fleet.prefix": "executor",
            "executor-fleet.hostname": socket.gethostname(),
            "executor-fleet.executor": executor,
            "executor-fleet.pid": str(pid),
            "executor-fleet.job": str(job),
        }
        return client.containers.create("busybox", ["sleep", "300"], labels=labels)

    dead = container("gone-1", 999999, 5)
    alive = container("other", os.getppid(), 6)
    mine_active = container("test-executor", 1, 7)
    try:
        removed = docker_runtime.remove_orphans(lambda job: job == 7)
        assert removed == [dead.name]
        names = {c.name for c in client.containers.list(all=True)}
        assert alive.name in names and mine_active.name in names
        assert docker_runtime.remove_orphans(lambda job: False) == [mine_active.name]
    finally:
        for c in (dead, alive, mine_active):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def test_shell_runtime_runs_in_the_workspace_and_stops_the_process_group(workspace: Workspace) -> None:
    runtime = ShellRuntime(make_settings(EXECUTOR_RUNTIME="shell", EXECUTOR_JOB_MEMORY="0"), "test-executor")
    out = entry()
    result = run_step(runtime, step("pwd", "echo $FOO", dir="sub", env=["FOO=1"]), workspace, out, StopSignal())
    out.finish(result.exit_code)
    assert result.exit_code == 0
    assert out.output().splitlines()[1:] == [f"stdout: {workspace.path / 'sub'}", "stdout: 1"]
    assert "image 'busybox' is ignored: the step runs on the executor host, not isolated" in out.output()

    stop = StopSignal()
    marker = workspace.path / "child.pid"
    threading.Timer(0.5, stop.stop, args=(StopReason.CANCELED,)).start()
    result = run_step(runtime, step(f"sleep 300 & echo $! > {marker}; wait"), workspace, entry(), stop)
    assert result.exit_code == 128 + 15
    child = Path(f"/proc/{marker.read_text().strip()}/status")
    time.sleep(0.2)
    # Gone, or a zombie waiting for a reaper: either way no longer running.
    assert not child.exists() or "State:\tZ" in child.read_text()


def test_docker_host_mount_path_is_what_the_daemon_mounts(docker_engine: DockerEngine, workspace: Workspace) -> None:
    runtime = DockerRuntime(
        make_settings(docker_engine.host, EXECUTOR_DOCKER_HOST_MOUNT_PATH="/workspaces", EXECUTOR_JOB_MEMORY="0"),
        "test-executor",
    )
    argv = runtime.open_job(JobSpec(id=1), workspace).describe(step("true", env=["A=1"]))
    assert f"/workspaces/{workspace.job_dir.name}/workspace:/data" in argv
    assert "--memory" not in argv and argv[argv.index("-e") : argv.index("-e") + 2] == ["-e", "A=1"]


def test_docker_step_cannot_mknod_or_gain_privileges_but_builds_work(
    docker_runtime: DockerRuntime, workspace: Workspace
) -> None:
    out = entry()
    result = run_step(
        docker_runtime,
        step(
            # What a build does: write, chown to another user, chmod, archive, run processes in parallel.
            "mkdir -p build && echo int main > build/main.c && chown -R 65534:65534 build && chmod 0755 build",
            "tar cf build.tar build && ls -ln build.tar | cut -c1-10",
            "for i in 1 2 3 4 5 6 7 8; do (echo job $i > build/$i.out) & done; wait; ls build | wc -l",
            "grep -E '^(NoNewPrivs|CapBnd):' /proc/self/status",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
            "if mknod /tmp/disk b 8 0 2>/tmp/mknod.err; then echo MKNOD-WORKED; else echo mknod refused; fi",
            "cat /tmp/mknod.err",
            "su -s /bin/sh nobody -c 'id -u'",  # changing to another user of the image still works
        ),
        workspace,
        out,
        StopSignal(),
    )
    out.finish(result.exit_code)
    lines = out.output().splitlines()
    assert result.exit_code == 0, out.output()
    assert lines[:2] == ["stdout: -rw-r--r--", "stdout: 9"], out.output()
    assert (workspace.path / "build").stat().st_uid == 65534
    assert lines[3] == "stdout: NoNewPrivs:\t1"  # setuid binaries do not raise privileges
    # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE: bits 0 1 3 4 5 6 7 10.
    assert (
        lines[2] == f"stdout: CapBnd:\t{(1 << 0 | 1 << 1 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 10):016x}"
    )
    assert lines[4] == "stdout: 4096"
    assert lines[5] == "stdout: mknod refused"
    assert "Operation not permitted" in lines[6]
    assert lines[7] == "stdout: 65534"


def test_test_vm_sandbox_never_pulls_a_missing_image(
    docker_runtime: DockerRuntime, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    pulls: list[str] = []
    monkeypatch.setattr(docker_runtime.client.images, "pull", lambda image, **kw: pulls.append(image))
    monkeypatch.setenv("EXECUTOR_TEST_VM_IMAGE", "acme/not-here:2")
    with pytest.raises(RuntimeUnavailable, match="image 'acme/not-here:2' is not present in the Docker Engine"):
        docker_runtime.start_sandbox(workspace, "executor-test-vm-x")
    assert pulls == [], "a missing image must not be pulled (from the internet) by test-vm"
    assert docker_runtime.client.containers.list(all=True, filters={"name": "executor-test-vm-x"}) == []


@pytest.mark.parametrize("directory", [".", "./", "", "./sub/"])
def test_dot_dirs_name_the_workspace_in_both_runtimes(
    docker_runtime: DockerRuntime, workspace: Workspace, directory: str
) -> None:
    shell = ShellRuntime(make_settings(EXECUTOR_RUNTIME="shell", EXECUTOR_JOB_MEMORY="0"), "test-executor")
    expected = {"docker": "/data", "shell": str(workspace.path)}
    for name, runtime in (("docker", docker_runtime), ("shell", shell)):
        out = entry()
        result = run_step(runtime, step("pwd", dir=directory), workspace, out, StopSignal())
        out.finish(result.exit_code)
        suffix = "/sub" if "sub" in directory else ""
        assert result.exit_code == 0 and out.output().splitlines()[-1] == f"stdout: {expected[name]}{suffix}", name
