"""The agent end to end: the real `executor` program, a real `fleet server` and a private Docker Engine."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.executor_agent.helpers import (
    AgentProcess,
    add_queue,
    b64,
    job,
    logs,
    make_repo,
    register_repo,
    step_output,
    submit,
    wait_for,
    wait_state,
)
from tests.support.docker_engine import DockerEngine
from tests.support.fleet_server import FleetServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]
StartAgent = Callable[..., AgentProcess]


def busybox(*commands: str) -> list[dict[str, object]]:
    return [{"image": "busybox", "commands": list(commands)}]


def test_two_step_job_edits_the_clone_and_the_diff_is_shown(
    fleet_server: FleetServer, agents: StartAgent, tmp_path: Path
) -> None:
    sha = make_repo(tmp_path / "origin", {"src/greeting.txt": "hello world\n", "README": "demo\n"})
    register_repo(fleet_server, "github.com/acme/app", tmp_path / "origin")
    job_id = submit(
        fleet_server,
        repositoryName="github.com/acme/app",
        commit=sha,
        shallowClone=True,
        files={"inputs/name.txt": {"content": b64("fleet")}},
        dockerSteps=[
            {
                "key": "edit",
                "image": "busybox",
                "dir": "src",
                "env": ["WHO=s3cr3t-value", "GREETING=bye"],
                "commands": ["pwd", 'sed -i "s/hello/$GREETING/" greeting.txt', "echo who=$WHO"],
            },
            {"image": "busybox", "commands": ["cat src/greeting.txt inputs/name.txt"]},
        ],
        cliSteps=[{"key": "diff", "commands": ["echo executor-vars=$(env | grep -c ^EXECUTOR_ || true)", "git diff"]}],
        redactedValues={"s3cr3t-value": "[who]"},
    )
    agent = agents(EXECUTOR_NUM_TOTAL_JOBS="1", EXECUTOR_TRUSTED_QUEUES="batches")
    record = wait_state(fleet_server, job_id)
    assert record["state"] == "completed", (record, logs(fleet_server, job_id))
    entries = logs(fleet_server, job_id)
    assert list(entries) == [
        "setup.git.init",
        "setup.git.add-remote",
        "setup.git.disable-gc",
        "setup.git.fetch",
        "setup.git.checkout",
        "setup.files",
        "step.docker.edit",
        "step.docker.1",
        "step.cli.diff",
        "teardown.workspace",
    ]
    assert all(e["exitCode"] == 0 and e["durationMs"] is not None for e in entries.values())
    assert "--depth=1" in entries["setup.git.fetch"]["command"]
    assert not any("Authorization" in arg for arg in entries["setup.git.fetch"]["command"])  # in git's env
    assert entries["step.docker.edit"]["out"] == "stdout: /data/src\nstdout: who=[who]\n"
    assert "--cpus" in entries["step.docker.edit"]["command"] and "256M" in entries["step.docker.edit"]["command"]
    assert entries["step.docker.1"]["out"] == "stdout: bye world\nstdout: fleet\n"
    diff = entries["step.cli.diff"]["out"]
    assert diff.startswith("stdout: executor-vars=0\n"), "host steps must not see the executor's own settings"
    assert "stdout: -hello world" in diff and "stdout: +bye world" in diff
    everything = repr(entries)
    assert "s3cr3t-value" not in everything and fleet_server.executor_token not in everything
    # EXECUTOR_NUM_TOTAL_JOBS reached: the agent exits 0 by itself (the VM image powers off on that).
    assert agent.wait(30) == 0
    assert "EXECUTOR_NUM_TOTAL_JOBS=1 jobs dequeued" in agent.log()
    assert list((tmp_path / "workspaces").iterdir()) == []


def test_memory_limit_kills_the_step_and_errors_the_job(fleet_server: FleetServer, agents: StartAgent) -> None:
    add_queue(fleet_server, "strict", max_retries=0)
    agents(EXECUTOR_QUEUE_NAME="strict", EXECUTOR_JOB_MEMORY="32M")
    job_id = submit(fleet_server, queue="strict", dockerSteps=busybox('a=x; while :; do a="$a$a"; done'))
    record = wait_state(fleet_server, job_id)
    assert record["state"] == "failed"  # errored with no retries left
    assert "killed: the step used more than its memory limit of 32M (EXECUTOR_JOB_MEMORY)" in record["failureMessage"]
    assert "memory limit of 32M" in step_output(fleet_server, job_id, "step.docker.0")


def test_cancel_mid_step_removes_the_container(
    fleet_server: FleetServer, agents: StartAgent, docker_engine: DockerEngine
) -> None:
    agents()
    job_id = submit(fleet_server, dockerSteps=busybox("echo started", "sleep 300"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    assert docker_engine.containers(f"executor-fleet.job={job_id}")
    with fleet_server.api() as api:
        assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    canceled_at = time.monotonic()
    assert wait_state(fleet_server, job_id, timeout=200)["state"] == "canceled"
    wait_for("the container to go", lambda: not docker_engine.containers(f"executor-fleet.job={job_id}"), timeout=200)
    assert time.monotonic() - canceled_at < 250, "the step (sleep 300) was not stopped by the cancel"


def test_maximum_runtime_stops_the_job(fleet_server: FleetServer, agents: StartAgent) -> None:
    add_queue(fleet_server, "strict", max_retries=0)
    agents(EXECUTOR_QUEUE_NAME="strict", EXECUTOR_MAXIMUM_RUNTIME_PER_JOB="2s")
    job_id = submit(fleet_server, queue="strict", dockerSteps=busybox("sleep 300"))
    record = wait_state(fleet_server, job_id, timeout=200)
    assert record["state"] == "failed"
    assert record["failureMessage"] == "job exceeded maximum execution time of 2s"


def test_bad_input_fails_the_job_and_the_agent_keeps_serving(fleet_server: FleetServer, agents: StartAgent) -> None:
    add_queue(fleet_server, "strict", max_retries=0)
    agent = agents(EXECUTOR_QUEUE_NAME="strict")
    # (A file named "../../x" is refused at submit already; a step's dir only the agent judges.)
    bad_path = submit(
        fleet_server, queue="strict", dockerSteps=[{"image": "busybox", "dir": "../..", "commands": ["true"]}]
    )
    no_image = submit(fleet_server, queue="strict", dockerSteps=[{"image": "nope/missing:1", "commands": ["true"]}])
    cli_untrusted = submit(fleet_server, queue="strict", cliSteps=[{"commands": ["id"]}])
    good = submit(fleet_server, queue="strict", dockerSteps=busybox("echo fine"))
    assert (
        wait_state(fleet_server, bad_path)["failureMessage"]
        == "step.docker.0 dir '../..': '..' would leave the workspace"
    )
    missing = wait_state(fleet_server, no_image)
    assert missing["state"] == "failed"
    assert "image 'nope/missing:1' is not available" in missing["failureMessage"]
    untrusted = wait_state(fleet_server, cli_untrusted)
    assert "queue 'strict' is not in EXECUTOR_TRUSTED_QUEUES" in untrusted["failureMessage"]
    assert wait_state(fleet_server, good)["state"] == "completed"
    assert agent.process.poll() is None


def test_first_sigterm_drains_second_stops(fleet_server: FleetServer, agents: StartAgent) -> None:
    agent = agents()
    first = submit(fleet_server, dockerSteps=busybox("echo started", "sleep 3", "echo done"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, first, "step.docker.0"))
    agent.signal(signal.SIGTERM)
    waiting = submit(fleet_server, dockerSteps=busybox("true"))
    assert agent.wait(30) == 0
    assert wait_state(fleet_server, first)["state"] == "completed"
    assert "stdout: done" in step_output(fleet_server, first, "step.docker.0")
    assert wait_state(fleet_server, waiting, states=("queued",))["state"] == "queued"
    assert "SIGTERM: draining" in agent.log()

    second = agents()
    wait_state(fleet_server, waiting)  # the next agent takes the queued job
    long = submit(fleet_server, dockerSteps=busybox("echo started", "sleep 300"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, long, "step.docker.0"))
    second.signal(signal.SIGTERM)
    time.sleep(0.5)
    second.signal(signal.SIGTERM)
    assert second.wait(30) != 0
    record = wait_state(fleet_server, long)
    assert record["state"] == "failed"
    assert record["failureMessage"] == "executor was stopped while the job was running (second signal)"


def test_killed_agent_job_is_requeued_and_orphan_removed(
    fleet_server: FleetServer, agents: StartAgent, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    first = agents()
    job_id = submit(fleet_server, dockerSteps=busybox("echo started", "sleep 6"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    orphans = docker_engine.containers(f"executor-fleet.job={job_id}")
    assert len(orphans) == 1
    first.signal(signal.SIGKILL)
    first.wait(10)
    left_behind = list((tmp_path / "workspaces").iterdir())
    assert len(left_behind) == 1
    # The server notices the missing heartbeats (stall time 3s in tests) and requeues the job.
    wait_for("the job to be requeued", lambda: wait_state(fleet_server, job_id, ("queued", "processing"))["numResets"])
    agents(EXECUTOR_NUM_TOTAL_JOBS="1")
    wait_for("the orphan to be removed", lambda: orphans[0] not in docker_engine.containers(), timeout=120)
    record = wait_state(fleet_server, job_id, timeout=60)
    assert record["state"] == "completed" and record["numResets"] == 1
    assert not left_behind[0].exists(), "the janitor removes the dead executor's workspace too"


def restart_server(server: FleetServer, **settings: str) -> None:
    """Start the same server again (same port, tokens and database) after it was stopped."""
    env = {**server.env, **{f"FLEET_{k.upper()}": v for k, v in settings.items()}}
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "fleet", "server", "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.log_path.parent,
        )

    def healthy() -> bool:
        try:
            return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("the server to come back", healthy)


def test_result_is_kept_and_resent_while_the_server_is_down(fleet_server: FleetServer, agents: StartAgent) -> None:
    agent = agents()
    job_id = submit(fleet_server, dockerSteps=busybox("echo started", "sleep 3", "echo finished"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    fleet_server.stop()
    time.sleep(6)  # the job finishes while nobody can hear about it
    # A long stall time, so the restarted server does not requeue the job before the agent gets through.
    restart_server(fleet_server, stalled_job_seconds="120")
    record = wait_state(fleet_server, job_id, timeout=60)
    assert record["state"] == "completed"
    assert "stdout: finished" in step_output(fleet_server, job_id, "step.docker.0")
    assert "retrying in" in agent.log()
    assert agent.process.poll() is None


def test_several_queues_and_jobs_at_once(fleet_server: FleetServer, agents: StartAgent, tmp_path: Path) -> None:
    agents(EXECUTOR_QUEUE_NAMES="batches,codeintel", EXECUTOR_QUEUE_NAME="", EXECUTOR_MAXIMUM_NUM_JOBS="2",
           EXECUTOR_KEEP_WORKSPACES="true")  # fmt: skip
    slow = busybox("echo started", "sleep 3", "echo kept > kept.txt")
    a = submit(fleet_server, queue="batches", dockerSteps=slow)
    b = submit(fleet_server, queue="codeintel", dockerSteps=slow)
    third = submit(fleet_server, queue="batches", dockerSteps=busybox("true"))
    for job_id in (a, b):
        wait_for(f"job {job_id} to start", lambda j=job_id: "started" in step_output(fleet_server, j, "step.docker.0"))
    # Two slots, both busy: the third job waits for one to free up.
    assert job(fleet_server, third)["state"] == "queued"
    assert all(wait_state(fleet_server, j)["state"] == "completed" for j in (a, b, third))
    kept = sorted(p.read_text() for p in (tmp_path / "workspaces").glob("*/workspace/kept.txt"))
    assert kept == ["kept\n", "kept\n"]  # EXECUTOR_KEEP_WORKSPACES

    # Heartbeats carry the executor's metrics; the server keeps the last ones (read here from its SQLite file).
    def reported() -> str:
        with sqlite3.connect(fleet_server.database_url.removeprefix("sqlite:///")) as db:
            return str(db.execute("select prometheus_metrics from executors").fetchone()[0])

    wait_for("a heartbeat after the jobs", lambda: 'src_executor_processor_total{queue="batches"} 2.0' in reported())
    assert 'src_apiworker_apiclient_queue_total{op="mark_complete"} 3.0' in reported()


def test_max_active_time_ends_with_exit_0(agents: StartAgent) -> None:
    agent = agents(EXECUTOR_MAX_ACTIVE_TIME="2s")
    assert agent.wait(20) == 0
    assert "EXECUTOR_MAX_ACTIVE_TIME elapsed" in agent.log()


def test_job_requeued_behind_a_slow_executor_is_abandoned(
    fleet_server: FleetServer, agents: StartAgent, docker_engine: DockerEngine
) -> None:
    # Heartbeats slower than the server's 3s stall time: the server requeues the job while it runs.
    agent = agents(EXECUTOR_HEARTBEAT_INTERVAL="120s", EXECUTOR_NUM_TOTAL_JOBS="1")
    job_id = submit(fleet_server, dockerSteps=busybox("echo started", "while :; do echo tick; sleep 0.5; done"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    wait_for("the requeue", lambda: job(fleet_server, job_id)["numResets"] >= 1, timeout=100)
    requeued = time.monotonic()
    # The next log write is refused (the job token died with the requeue): the agent abandons the job without
    # waiting for its next heartbeat (120 s away).
    assert agent.wait(100) == 0
    assert time.monotonic() - requeued < 100
    assert "abandoned (the server no longer assigns it to this executor)" in agent.log()
    assert not docker_engine.containers(f"executor-fleet.job={job_id}")
    assert job(fleet_server, job_id)["state"] == "queued"


def test_sparse_checkout_into_a_repository_directory(
    fleet_server: FleetServer, agents: StartAgent, tmp_path: Path
) -> None:
    sha = make_repo(tmp_path / "origin", {"src/main.txt": "code\n", "docs/big.txt": "docs\n", "README": "r\n"})
    register_repo(fleet_server, "github.com/acme/mono", tmp_path / "origin")
    agents(EXECUTOR_NUM_TOTAL_JOBS="1")
    job_id = submit(
        fleet_server,
        repositoryName="github.com/acme/mono",
        repositoryDirectory="checkout",
        commit=sha,
        fetchTags=True,
        sparseCheckout=["src/"],
        dockerSteps=busybox("find checkout -path checkout/.git -prune -o -type f -print | sort"),
    )
    record = wait_state(fleet_server, job_id)
    assert record["state"] == "completed", logs(fleet_server, job_id)
    entries = logs(fleet_server, job_id)
    assert entries["setup.git.sparse-checkout"]["command"] == ["write", ".git/info/sparse-checkout", "src/"]
    assert "--tags" in entries["setup.git.fetch"]["command"]
    assert entries["step.docker.0"]["out"] == "stdout: checkout/src/main.txt\n"


def processes_in(directory: Path) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd").startswith(str(directory)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_shell_runtime_job_and_orphaned_host_processes(
    fleet_server: FleetServer, agents: StartAgent, tmp_path: Path
) -> None:
    shell = {"EXECUTOR_RUNTIME": "shell", "EXECUTOR_TRUSTED_QUEUES": "batches"}
    first = agents(**shell)
    job_id = submit(fleet_server, dockerSteps=busybox("echo started in $PWD", "sleep 6", "echo slept"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    assert f"started in {tmp_path / 'workspaces'}" in step_output(fleet_server, job_id, "step.docker.0")
    first.signal(signal.SIGKILL)
    first.wait(10)
    orphans = processes_in(tmp_path / "workspaces")
    assert orphans, "the killed executor's step keeps running on the host"
    agents(**shell, EXECUTOR_NUM_TOTAL_JOBS="1")
    wait_for("the orphaned processes to be killed", lambda: not set(orphans) & set(processes_in(tmp_path)), timeout=15)
    record = wait_state(fleet_server, job_id, timeout=60)
    assert record["state"] == "completed" and record["numResets"] == 1
    assert "stdout: slept" in step_output(fleet_server, job_id, "step.docker.0")


def marked_processes(job_dir_prefix: str) -> list[int]:
    """Processes whose environment carries the host-step marker of a job directory starting with this prefix."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(f"EXECUTORFLEET_SANDBOX={job_dir_prefix}".encode()) for item in environ):
            found.append(int(proc.name))
    return found


def test_shell_step_of_a_killed_executor_is_killed_at_the_next_start(
    fleet_server: FleetServer, agents: StartAgent, tmp_path: Path
) -> None:
    add_queue(fleet_server, "other")
    first = agents(EXECUTOR_RUNTIME="shell", EXECUTOR_TRUSTED_QUEUES="batches")
    # The step leaves its workspace (cd /): found by its environment marker, not by its working directory.
    job_id = submit(fleet_server, dockerSteps=busybox("echo started", "cd /", "sleep 300"))
    wait_for("the step to start", lambda: "started" in step_output(fleet_server, job_id, "step.docker.0"))
    first.signal(signal.SIGKILL)
    # Not reaped yet: the dead executor is a zombie, which must not count as alive.
    wait_for("the executor to be dead", lambda: "State:\tZ" in Path(f"/proc/{first.process.pid}/status").read_text())
    orphans = marked_processes(f"executor-{job_id}-")
    assert orphans, "the killed executor's step keeps running on the host"
    # A cleanup interval of an hour: only the sweep at start can remove the orphan within the wait below.
    second = agents(
        EXECUTOR_RUNTIME="shell", EXECUTOR_QUEUE_NAME="other", EXECUTOR_TRUSTED_QUEUES="other",
        EXECUTOR_CLEANUP_TASK_INTERVAL="1h",
    )  # fmt: skip
    wait_for("the orphaned step to be killed", lambda: not set(orphans) & set(marked_processes("executor-")), 60)
    # The sweep kills, removes the workspace, then logs what it removed: wait for its line, not just the kill.
    wait_for("the janitor's line", lambda: "janitor: removed orphaned process" in second.log(), 60)
    assert not list((tmp_path / "workspaces").glob(f"executor-{job_id}-*")), "its workspace is removed too"
    first.wait(10)
