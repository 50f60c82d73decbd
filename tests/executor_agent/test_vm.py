"""The microVM runtime with real VMs: QEMU microvm in software emulation (TCG: this host has no hardware
virtualisation), Debian's cloud kernel, the guest agent from `executor install vm`. Few boots: one VM carries the
assertions of a whole job where that stays honest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor_agent.config import ExecutorSettings
from executor_agent.job import StopReason, StopSignal
from executor_agent.runtimes.vm import VMRuntime
from executor_agent.vm import network
from executor_agent.workspace import create
from tests.executor_agent import vm_helpers as vh
from tests.support.docker_engine import DockerEngine

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def vm_assets(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Path:
    vh.require_tools()
    assets_dir = tmp_path_factory.mktemp("vm-assets")
    vh.prepare_assets(vh.vm_settings(assets_dir, assets_dir, docker_engine.host))
    client = docker_engine.client()
    vh.import_marker_image(client)
    client.close()
    return assets_dir


@pytest.fixture
def ns() -> Iterator[str]:
    yield from vh.netns()


def make(vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str, **env: str) -> VMRuntime:
    settings: ExecutorSettings = vh.vm_settings(vm_assets, tmp_path / "work", docker_engine.host, **env)
    return VMRuntime(settings, "test-executor", netns=ns)


def test_job_in_one_vm(vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str) -> None:
    """Two images, a file handed over in /data, env and dir, sizing seen from inside, a secret printed in two writes,
    the workspace copied back (EXECUTOR_KEEP_WORKSPACES), a step killed for memory; nothing left afterwards."""
    runtime = make(vm_assets, tmp_path, docker_engine, ns, EXECUTOR_KEEP_WORKSPACES="true")
    ws = create(tmp_path / "work", "executor", 7, "test-executor")
    (ws.path / "sub").mkdir()
    (ws.path / "sub" / "from-host.txt").write_text("cloned on the host\n")
    job = vh.json_job(
        redactedValues={"token-s3cret": "[REDACTED]"},
        dockerSteps=[
            {"image": "busybox:latest", "dir": ".", "env": ["GREETING=hello world"], "commands": [
                'echo "$GREETING" > handover.txt', "pwd", "nproc",
                "awk '/MemTotal/ {print $2}' /proc/meminfo",
                "printf 'tok'; sleep 0.5; printf 'en-s3cret\\n'",
                "test ! -e /etc/marker && echo no-marker",
            ]},
            {"image": vh.MARKER_IMAGE, "dir": "sub", "commands": [
                "cat /etc/marker", "cat ../handover.txt", "cat from-host.txt", "pwd", 'echo "$IMAGE_ENV"',
                "echo written-in-vm > /data/from-vm.txt",
            ]},
            {"image": "busybox:latest", "commands": ["awk 'BEGIN { s = \"x\"; while (1) s = s s }'"]},
        ],
    )  # fmt: skip
    started = time.monotonic()
    run = vh.run_job(runtime, job, ws, StopSignal())
    sandbox = run.sandbox
    print(f"job in one VM: {time.monotonic() - started:.1f}s, timings {sandbox.timings}")

    first = vh.stdout_lines(run.entries["step.docker.0"])
    assert run.results["step.docker.0"].exit_code == 0, run.entries["step.docker.0"].output()
    assert first[0] == "/data"
    assert first[1] == "2"  # EXECUTOR_JOB_NUM_CPUS vCPUs
    mem_kib = int(first[2])
    assert 150 * 1024 < mem_kib <= 256 * 1024  # EXECUTOR_JOB_MEMORY=256M, less what the kernel reserves
    assert first[3] == "[REDACTED]", run.entries["step.docker.0"].output()
    assert "s3cret" not in run.entries["step.docker.0"].output()
    assert first[4] == "no-marker"

    second = vh.stdout_lines(run.entries["step.docker.1"])
    assert run.results["step.docker.1"].exit_code == 0, run.entries["step.docker.1"].output()
    assert second == ["marker image", "hello world", "cloned on the host", "/data/sub", "from-image"]

    oom = run.results["step.docker.2"]
    assert oom.exit_code != 0
    assert oom.message == "killed: out of memory in the VM (limit 256M, EXECUTOR_JOB_MEMORY)"

    # Copied back from the VM's disk, as EXECUTOR_KEEP_WORKSPACES asks.
    assert (ws.path / "from-vm.txt").read_text() == "written-in-vm\n"
    assert (ws.path / "handover.txt").read_text() == "hello world\n"
    # Nothing left: no monitor process, no tap, no rule, no disk.
    assert not vh.qemu_alive(sandbox.name)
    assert network.taps(ns) == []
    assert network.rules_of(sandbox.name, ns) == []
    assert not sandbox.dir.exists()
    # The second use of an image is served from the cache: one disk per image.
    assert len(list((vm_assets / "images").glob("*.ext4"))) == 2


@pytest.mark.parametrize("reason", [StopReason.CANCELED, StopReason.TIMEOUT])
def test_stop_mid_step(
    vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str, reason: StopReason
) -> None:
    """Cancel (and the max-runtime timer, the same StopSignal) stop the step in the guest, then the VM; the cliStep
    runs inside the VM too (its base: the initramfs's busybox)."""
    runtime = make(vm_assets, tmp_path, docker_engine, ns)
    ws = create(tmp_path / "work", "executor", 7, "test-executor")
    job = vh.json_job(cliSteps=[{"commands": ["echo started; test -e /init && echo in-vm-base; sleep 300"]}])
    stop = StopSignal()
    run = vh.JobRun()
    stopped_at: list[float] = []

    def stop_when_started() -> None:
        while "started" not in (run.entries.get("step.cli.0").output() if run.entries.get("step.cli.0") else ""):
            time.sleep(0.1)
        stopped_at.append(time.monotonic())
        stop.stop(reason)

    threading.Thread(target=stop_when_started, daemon=True).start()
    vh.run_job(runtime, job, ws, stop, run)
    gone = time.monotonic() - stopped_at[0]
    print(f"{reason}: VM gone {gone:.1f}s after the stop")
    assert vh.stdout_lines(run.entries["step.cli.0"]) == ["started", "in-vm-base"]
    assert run.results["step.cli.0"].exit_code == 143  # SIGTERM reached the step in the guest
    assert gone < 15
    assert not vh.qemu_alive(run.sandbox.name)
    assert network.taps(ns) == []
