"""The microVM runtime with real VMs: QEMU microvm in software emulation (TCG: this host has no hardware
virtualisation), Debian's cloud kernel, the guest agent from `executor install vm`, the job runner in-process with
an in-memory entry sink. Few boots: one VM carries the assertions of a whole job where that stays honest."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from executor_agent.janitor import Janitor
from executor_agent.job import StopReason, StopSignal
from executor_agent.runtimes.vm import VMRuntime
from executor_agent.vm import network
from executor_agent.workspace import create
from tests.executor_agent import vm_helpers as vh
from tests.support.docker_engine import DockerEngine

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def vm_assets(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Path:
    """The kernel from a local Docker image (EXECUTOR_FIRECRACKER_KERNEL_IMAGE), the marker image as the base of
    image-less steps (EXECUTOR_FIRECRACKER_IMAGE): every VM below boots what `install vm` unpacked from them."""
    vh.require_tools()
    assets_dir = tmp_path_factory.mktemp("vm-assets")
    client = docker_engine.client()
    vh.import_marker_image(client)
    vh.import_kernel_image(client)
    client.close()
    vh.prepare_assets(vh.vm_settings(assets_dir, assets_dir, docker_engine.host,
                                     EXECUTOR_FIRECRACKER_KERNEL_IMAGE=vh.KERNEL_IMAGE,
                                     EXECUTOR_FIRECRACKER_IMAGE=vh.MARKER_IMAGE))  # fmt: skip
    return assets_dir


@pytest.fixture
def ns() -> Iterator[str]:
    yield from vh.netns()


@dataclass
class Outside:
    """Beyond the executor host `ns`: a namespace `out` behind a veth, as the internet and the cloud network are.

    `out` holds 198.18.0.2 (a public address, allowed), 10.77.0.1 (the fleet server: private but allowed),
    10.77.0.2 (private, dropped) and 169.254.169.254 (the metadata service, dropped), an HTTP server on port 8080
    of all of them; `ns` has one of its own on port 8081 (the host itself, which guests may not reach)."""

    ns: str
    uploads: Path


def _serve(netns: str, name: str, port: int, log: Path) -> subprocess.Popen[str]:
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.executor_agent.netns_http", name, str(port),
            str(log)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def outside(ns: str, tmp_path: Path) -> Iterator[Outside]:
    out = f"{ns}-out"
    sh = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    sh("ip", "netns", "add", out)
    servers = []
    try:
        sh("ip", "-n", ns, "link", "add", "vo0", "type", "veth", "peer", "name", "vo1", "netns", out)
        sh("ip", "-n", ns, "addr", "add", "198.18.0.1/24", "dev", "vo0")
        sh("ip", "-n", ns, "link", "set", "vo0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", "198.18.0.2")
        sh("ip", "-n", out, "link", "set", "lo", "up")
        sh("ip", "-n", out, "addr", "add", "198.18.0.2/24", "dev", "vo1")
        for extra in ("10.77.0.1/32", "10.77.0.2/32", "169.254.169.254/32"):
            sh("ip", "-n", out, "addr", "add", extra, "dev", "lo")
        sh("ip", "-n", out, "link", "set", "vo1", "up")
        uploads = tmp_path / "uploads.log"
        servers = [_serve(out, "outside", 8080, uploads), _serve(ns, "host", 8081, tmp_path / "host.log")]
        yield Outside(ns, uploads)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", out], check=False)


NETWORK_STEP = [
    "timeout 20 wget -q -O - http://10.77.0.1:8080/hello",  # the fleet server (EXECUTOR_FRONTEND_URL)
    "timeout 20 wget -q -O - http://198.18.0.2:8080/hello",  # a public address
    "timeout 5 wget -q -O - http://10.77.0.2:8080/hello || echo private-dropped",
    "timeout 5 wget -q -O - http://169.254.169.254:8080/hello || echo metadata-dropped",
    "gw=$(ip route | awk '/default/ {print $3}'); timeout 5 wget -q -O - http://$gw:8081/hello || echo host-dropped",
    # 512 KiB each way through EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS/EGRESS of 32 KiB/s.
    "a=$(cut -d' ' -f1 /proc/uptime); wget -q -O /tmp/big http://198.18.0.2:8080/big;"
    " b=$(cut -d' ' -f1 /proc/uptime); echo \"$(wc -c < /tmp/big) $a $b\"",
    "wget -q -O - --post-file /tmp/big http://198.18.0.2:8080/up",
]


def make(vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str, **env: str) -> VMRuntime:
    settings = vh.vm_settings(vm_assets, tmp_path / "work", docker_engine.host, **env)
    return VMRuntime(settings, "test-executor", netns=ns)


def assert_nothing_left(runtime: VMRuntime, name: str, ns: str) -> None:
    assert not vh.qemu_alive(name)
    assert network.taps(ns) == []
    assert network.rules_of(name, ns) == []
    assert not (runtime.vms_root / name).exists()


def test_job_in_one_vm(vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, outside: Outside) -> None:
    """Two images, a file handed over in /data, env and dir (`"."` as the docs write it), sizing seen from inside,
    a secret printed in two writes, the startup script, the network policy and bandwidth limits with real traffic,
    the workspace copied back (EXECUTOR_KEEP_WORKSPACES), a step killed for memory; nothing left afterwards."""
    ns = outside.ns
    startup = tmp_path / "startup.sh"
    startup.write_text("echo from-startup > /data/startup.txt\n")
    limit = 32 * 1024
    runtime = make(vm_assets, tmp_path, docker_engine, ns, EXECUTOR_KEEP_WORKSPACES="true",
                   EXECUTOR_VM_STARTUP_SCRIPT_PATH=str(startup), EXECUTOR_FRONTEND_URL="http://10.77.0.1:8080",
                   EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS=str(limit),
                   EXECUTOR_FIRECRACKER_BANDWIDTH_EGRESS=str(limit))  # fmt: skip
    runner, sink = vh.job_runner(runtime, tmp_path / "work")
    job = vh.raw_job(
        redactedValues={"token-s3cret": "[REDACTED]"},
        files={"sub/from-host.txt": {"content": base64.b64encode(b"written on the host\n").decode()}},
        dockerSteps=[
            {"image": "busybox:latest", "dir": ".", "env": ["GREETING=hello world"], "commands": [
                'echo "$GREETING" > handover.txt', "pwd", "nproc",
                "awk '/MemTotal/ {print $2}' /proc/meminfo",
                "printf 'tok'; sleep 0.5; printf 'en-s3cret\\n'",
                "test ! -e /etc/marker && echo no-marker", "cat startup.txt",
            ]},
            {"image": vh.MARKER_IMAGE, "dir": "sub", "commands": [
                "cat /etc/marker", "cat ../handover.txt", "cat from-host.txt", "pwd", 'echo "$IMAGE_ENV"',
                "echo written-in-vm > /data/from-vm.txt",
            ]},
            {"image": "busybox:latest", "commands": NETWORK_STEP},
            {"image": "busybox:latest", "commands": ["awk 'BEGIN { s = \"x\"; while (1) s = s s }'"]},
        ],
    )  # fmt: skip
    started = time.monotonic()
    outcome = runner.run(job, StopSignal())
    print(f"job in one VM: {time.monotonic() - started:.1f}s")

    first = sink.stdout("step.docker.0")
    assert sink.entry("step.docker.0")["exitCode"] == 0, sink.out("step.docker.0")
    assert first[0] == "/data"
    assert first[1] == "2"  # EXECUTOR_JOB_NUM_CPUS vCPUs
    assert 150 * 1024 < int(first[2]) <= 256 * 1024  # MemTotal: EXECUTOR_JOB_MEMORY=256M less the kernel's share
    assert first[3] == "[REDACTED]", sink.out("step.docker.0")
    assert "s3cret" not in sink.out("step.docker.0")
    assert first[4] == "no-marker"
    assert first[5] == "from-startup"  # EXECUTOR_VM_STARTUP_SCRIPT_PATH ran in the guest before the first step

    assert sink.entry("step.docker.1")["exitCode"] == 0, sink.out("step.docker.1")
    second = sink.stdout("step.docker.1")
    assert second == ["marker image", "hello world", "written on the host", "/data/sub", "from-image"]

    # Only the fleet server and the outside world; every byte at the configured rate (tbf on the tap for the VM's
    # ingress, iptables hashlimit for its egress). Lower bounds only: a busy machine only makes them slower.
    assert sink.entry("step.docker.2")["exitCode"] == 0, sink.out("step.docker.2")
    net = sink.stdout("step.docker.2")
    assert net[:5] == ["hello-from-outside", "hello-from-outside", "private-dropped", "metadata-dropped",
                       "host-dropped"], net  # fmt: skip
    size, down_start, down_end = net[5].split()
    assert int(size) == 512 * 1024 and net[6] == "ok"
    down = float(down_end) - float(down_start)
    (upload,) = outside.uploads.read_text().splitlines()
    up_bytes, up = int(upload.split()[0]), float(upload.split()[1])
    print(f"512 KiB at {limit} B/s: down {down:.1f}s, up {up:.1f}s")
    # About (512 KiB - the burst) / 32 KiB/s = 8 s each way; unlimited, an emulated guest moves 512 KiB in well
    # under a second. iptables rounds hashlimit's burst up, so the upload bound is looser.
    assert up_bytes == 512 * 1024 and up >= 3, upload
    assert down >= 6, net[5]

    # The job errors with the reason; the log entry has the exit code.
    assert outcome == "errored"
    assert sink.results == [
        ("errored", "step.docker.3 failed: killed: out of memory in the VM (limit 256M, EXECUTOR_JOB_MEMORY) "
                    "(see its log entry)")
    ]  # fmt: skip
    assert sink.entry("step.docker.3")["exitCode"] != 0

    # Copied back from the VM's disk, as EXECUTOR_KEEP_WORKSPACES asks.
    (kept,) = (tmp_path / "work").glob("executor-7-*/workspace")
    assert (kept / "from-vm.txt").read_text() == "written-in-vm\n"
    assert (kept / "handover.txt").read_text() == "hello world\n"
    assert_nothing_left(runtime, vh.vm_name(sink, "step.docker.0"), ns)
    # One disk per image: the later steps' busybox came from the cache.
    assert len(list((vm_assets / "images").glob("*.ext4"))) == 2


@pytest.mark.parametrize("reason", [StopReason.CANCELED, StopReason.TIMEOUT])
def test_stop_mid_step(
    vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str, reason: StopReason
) -> None:
    """Cancel, and the max-runtime limit (EXECUTOR_MAXIMUM_RUNTIME_PER_JOB, the job runner's timer), stop the step in
    the guest, then the VM. The cliStep runs inside the VM, in the base image (EXECUTOR_FIRECRACKER_IMAGE)."""
    env = {"EXECUTOR_TRUSTED_QUEUES": "batches"}
    if reason == StopReason.TIMEOUT:
        env["EXECUTOR_MAXIMUM_RUNTIME_PER_JOB"] = "40s"  # boot under TCG takes 5-20s here
    runtime = make(vm_assets, tmp_path, docker_engine, ns, **env)
    runner, sink = vh.job_runner(runtime, tmp_path / "work")
    job = vh.raw_job(cliSteps=[{"commands": ["echo started; cat /etc/marker; sleep 300"]}])
    stop = StopSignal()
    stopped_at: list[float] = []

    def watch() -> None:
        while "started" not in sink.out("step.cli.0"):
            time.sleep(0.1)
        if reason == StopReason.CANCELED:
            stop.stop(reason)
        while not stop.is_set():
            time.sleep(0.05)
        stopped_at.append(time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    outcome = runner.run(job, stop)
    gone = time.monotonic() - stopped_at[0]
    print(f"{reason}: job reported {gone:.1f}s after the stop")
    assert sink.stdout("step.cli.0") == ["started", "marker image"]
    assert sink.entry("step.cli.0")["exitCode"] == 143  # SIGTERM reached the step in the guest
    if reason == StopReason.CANCELED:
        assert outcome == "canceled"
    else:
        assert sink.results == [("errored", "job exceeded maximum execution time of 40s")]
    assert gone < 15  # the VM is gone before the job is reported
    assert_nothing_left(runtime, vh.vm_name(sink, "step.cli.0"), ns)


def test_janitor_removes_what_a_killed_agent_left(
    vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str
) -> None:
    """kill -9 of the agent mid-job leaves the VM running; the next agent's janitor removes VM, tap and disks."""
    work = tmp_path / "work"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.executor_agent.vm_child", str(vm_assets), str(work), docker_engine.host, ns],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        assert child.stdout is not None
        name = child.stdout.readline().strip()
        assert name.startswith("executor-7-"), name
        child.kill()  # kill -9: no teardown at all
        child.wait()
        vm_dir = work / "vms" / name
        assert vh.qemu_alive(name) and vm_dir.is_dir() and network.taps(ns) == [f"fc-{name.rsplit('-', 1)[1]}"]

        runtime = make(vm_assets, tmp_path, docker_engine, ns)
        janitor = Janitor(runtime, work, "executor", "next-executor", 60, False, set)
        removed = janitor.sweep()
        assert any(r.startswith("VM process ") for r in removed), removed
        assert f"tap fc-{name.rsplit('-', 1)[1]}" in removed
        assert_nothing_left(runtime, name, ns)
        assert list(work.glob("executor-7-*")) == []  # and the workspace
    finally:
        child.kill()


def test_sandbox_for_test_vm(vm_assets: Path, tmp_path: Path, docker_engine: DockerEngine, ns: str) -> None:
    """`executor test-vm`: a VM with the workspace at /data, a shell on the console socket it names, a command that
    removes it, and a janitor that leaves it alone."""
    runtime = make(vm_assets, tmp_path, docker_engine, ns)
    work = tmp_path / "work"
    ws = create(work, "test-vm-executor", 0, "test-executor")
    (ws.path / "README").write_text("from the repository\n")
    attach = runtime.start_sandbox(ws, ws.job_dir.name)
    socat, removal = attach.splitlines()
    console = socat.rsplit("UNIX-CONNECT:", 1)[1]
    remove = removal.split("remove it with: ", 1)[1].rstrip(")")
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(console)
        sock.settimeout(120)
        sock.sendall(b"\ncat /data/README; echo answer-$((6 * 7))\n")
        seen = b""
        while b"answer-42" not in seen:
            chunk = sock.recv(4096)
            assert chunk, seen
            seen += chunk
        assert b"from the repository" in seen
        sock.close()
        # A janitor sweep of a running executor does not take the sandbox away.
        Janitor(runtime, work, "executor", "other-executor", 60, False, set).sweep()
        assert vh.qemu_alive(ws.job_dir.name)
    finally:
        subprocess.run(["sh", "-c", remove], check=True)
    deadline = time.monotonic() + 30
    while vh.qemu_alive(ws.job_dir.name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not vh.qemu_alive(ws.job_dir.name)
    assert network.taps(ns) == []
    assert network.rules_of(ws.job_dir.name, ns) == []  # the printed command removes the VM's rules too
    assert not ws.job_dir.exists()
