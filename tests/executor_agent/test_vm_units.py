"""Pieces of the microVM runtime without booting a VM: the host side of the guest protocol, step scripts, the
VM settings, host checks, `executor install vm`, and the network rules (inside a network namespace made here)."""

from __future__ import annotations

import base64
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor_agent.config import ConfigError, load_settings
from executor_agent.runtimes.vm import run_script, unavailable_reason
from executor_agent.vm import assets, checks, network
from executor_agent.vm.guest import GuestChannel, StepExit
from tests.executor_agent import vm_helpers as vh
from tests.support.docker_engine import DockerEngine


def channel(data: bytes) -> tuple[GuestChannel, list[bytes]]:
    sent: list[bytes] = []
    ch = GuestChannel(io.BytesIO(data), sent.append)
    ch.start()
    return ch, sent


def frame(step: str, stream: int, data: bytes) -> bytes:
    return b"@@fleet OUT %s %d %s\n" % (step.encode(), stream, base64.b64encode(data))


def test_channel_frames_noise_and_early_output() -> None:
    # Kernel noise on a shared serial console, output before the host attached, a frame glued to noise.
    data = (
        b"[    1.0] virtio_blk virtio1: [vda] 2097152 512-byte logical blocks\n@@fleet READY\n"
        + frame("0", 1, b"partial ")
        + b"noise @@fleet OUT 0 1 " + base64.b64encode(b"line\n") + b"\n"
        + frame("0", 2, b"\x00\xffbinary")
        + b"@@fleet EXIT 0 3\n@@fleet EXIT 1 137 oom\n"
    )  # fmt: skip
    ch, sent = channel(data)
    assert ch.ready.wait(5)
    got: list[tuple[str, bytes]] = []
    ch.wait_exit("1", 5)
    ch.run("0", lambda stream, chunk: got.append((stream, chunk)))
    assert ch.wait_exit("0", 5) == StepExit(3)
    assert got == [("stdout", b"partial "), ("stdout", b"line\n"), ("stderr", b"\x00\xffbinary")]
    assert ch.wait_exit("1", 5) == StepExit(137, "oom")
    assert sent == [b"RUN 0\n"]
    assert any("virtio_blk" in n for n in ch.noise)


def test_channel_closed_ends_the_wait() -> None:
    ch, _ = channel(b"@@fleet READY\n")
    assert ch.wait_exit("0", 5) is None
    assert ch.closed.is_set()


@pytest.mark.parametrize(("directory", "cd"), [("", "cd /data"), (".", "cd /data"), ("sub/dir", "cd /data/sub/dir")])
def test_run_script_dir(directory: str, cd: str) -> None:
    script = run_script(["PATH=/bin", "IMAGE_ENV=x"], ["A=it's quoted", "B=$HOME"], directory)
    assert f"{cd} || exit 1" in script
    assert "export 'A=it'\"'\"'s quoted'" in script  # the step's values reach the shell untouched
    assert "export 'B=$HOME'" in script
    # The step's env comes after the image's (it wins), both after the defaults.
    assert script.index("IMAGE_ENV=x") < script.index("A=it")
    assert script.rstrip().endswith("exec /bin/sh /.fleet-step/script")


BASE_ENV = {
    "EXECUTOR_FRONTEND_URL": "http://fleet.example.com:3080",
    "EXECUTOR_FRONTEND_PASSWORD": "pw" * 10,
    "EXECUTOR_QUEUE_NAME": "batches",
}


def test_vm_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in BASE_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("EXECUTOR_USE_FIRECRACKER", "true")
    s = load_settings()
    assert (s.vm_backend, s.vm_allow_emulation, s.vm_assets_dir) == ("firecracker", False, "/var/lib/executor/vm")
    monkeypatch.setenv("EXECUTOR_JOB_MEMORY", "0")
    with pytest.raises(ConfigError, match=r"^EXECUTOR_JOB_MEMORY: 0 \(unbounded\) is not possible for a microVM"):
        load_settings()
    monkeypatch.setenv("EXECUTOR_USE_FIRECRACKER", "false")  # Docker: 0 stays "unbounded"
    assert load_settings().job_memory == 0
    monkeypatch.setenv("EXECUTOR_VM_BACKEND", "kvmtool")
    with pytest.raises(ConfigError, match=r"EXECUTOR_VM_BACKEND='kvmtool': must be firecracker or qemu"):
        load_settings()


def settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return vh.vm_settings(tmp_path / "assets", tmp_path / "work", "", **env)


def test_no_hardware_virt_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_hardware_virt", lambda: False)
    plain = settings(tmp_path, EXECUTOR_VM_ALLOW_EMULATION="false")
    reason = unavailable_reason(plain)
    assert reason is not None and "use a metal or nested-virtualisation machine" in reason
    assert "EXECUTOR_USE_FIRECRACKER=false" in reason
    ok, line = checks.host_checks(plain)[0]
    assert not ok and "fix: use a metal or nested-virtualisation machine" in line
    emulated = settings(tmp_path)
    assert unavailable_reason(emulated) is None
    ok, line = checks.host_checks(emulated)[0]
    assert ok and "software emulation (TCG) is in use" in line
    firecracker = settings(tmp_path, EXECUTOR_VM_BACKEND="firecracker")
    assert "Firecracker needs KVM" in (unavailable_reason(firecracker) or "")


def test_kvm_probe_reports_a_missing_device(tmp_path: Path) -> None:
    assert checks.kvm_problem(str(tmp_path / "kvm")) == f"cannot open {tmp_path / 'kvm'}: No such file or directory"


def test_host_checks_name_the_fix(tmp_path: Path) -> None:
    lines = dict((line.split(":")[0].split(" ")[0], (ok, line)) for ok, line in checks.host_checks(settings(tmp_path)))
    ok, line = lines["kernel"]
    assert not ok and line.endswith("(fix: executor install vm)")
    for tool in ("dmsetup", "losetup", "mkfs.ext4", "iptables", "strings"):
        assert tool in lines


def test_install_vm_is_idempotent(tmp_path: Path) -> None:
    vh.require_tools()
    s = settings(tmp_path)
    out: list[str] = []
    assert assets.install_vm(s, True, out.append) == 0
    assert out[-1].startswith("would vm: prepare kernel") and not (tmp_path / "assets").exists()
    assert assets.install_vm(s, False, out.append) == 0
    assert out[-1].startswith("✓ vm: kernel")
    initrd = (tmp_path / "assets" / "initrd.img").read_bytes()
    assert initrd.startswith(b"070701") and b"virtio_blk.ko" in initrd and b"guest agent" in initrd
    assert assets.install_vm(s, False, out.append) == 0
    assert out[-1].startswith("✓ vm: already done")
    assert checks.host_checks(s)[2][0]  # the kernel line passes now


def test_missing_kernel_path_is_one_line(tmp_path: Path) -> None:
    out: list[str] = []
    s = settings(tmp_path, EXECUTOR_FIRECRACKER_KERNEL_IMAGE=str(tmp_path / "nope"))
    assert assets.install_vm(s, False, out.append) == 1
    assert out == [
        f"✗ vm: EXECUTOR_FIRECRACKER_KERNEL_IMAGE={str(tmp_path / 'nope')!r}: no such file; give a kernel path such "
        "as /boot/vmlinuz-6.1.0-27-cloud-amd64 (apt-get install linux-image-cloud-amd64) or a local Docker image "
        "carrying /boot/vmlinuz-<version> and /lib/modules/<version>"
    ]


@pytest.fixture
def ns() -> Iterator[str]:
    yield from vh.netns()


def test_network_rules_in_a_namespace(ns: str) -> None:
    """Tap, NAT and the egress policy inside a namespace made here; teardown removes exactly this VM's rules."""
    net = network.plan("0a1b2c3d")
    other = network.plan("deadbeef")
    for n, name in ((net, "executor-7-0a1b2c3d"), (other, "executor-8-deadbeef")):
        network.setup(n, name, ns, "http://10.0.0.5:5000", "http://127.0.0.1:3080", 1000000, 500000)
    assert sorted(network.taps(ns)) == ["fc-0a1b2c3d", "fc-deadbeef"]
    chain = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S", network.CHAIN], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    rules = [line for line in chain.splitlines() if line.startswith("-A")]
    assert rules[0].endswith("--ctstate RELATED,ESTABLISHED -j ACCEPT")
    assert "-A EXECUTOR-FLEET-VM -d 10.0.0.5/32 -p tcp -m tcp --dport 5000 -j ACCEPT" in rules  # the mirror
    assert "-A EXECUTOR-FLEET-VM -d 127.0.0.1/32 -p tcp -m tcp --dport 3080 -j ACCEPT" in rules  # the fleet server
    drops = rules.index("-A EXECUTOR-FLEET-VM -d 169.254.169.254/32 -j DROP")
    assert drops > rules.index("-A EXECUTOR-FLEET-VM -d 10.0.0.5/32 -p tcp -m tcp --dport 5000 -j ACCEPT")
    assert "-A EXECUTOR-FLEET-VM -d 10.0.0.0/8 -j DROP" in rules
    assert "-A EXECUTOR-FLEET-VM -d 192.168.0.0/16 -j DROP" in rules
    mine = network.rules_of("executor-7-0a1b2c3d", ns)
    assert any("-A FORWARD -i fc-0a1b2c3d" in r and "-j EXECUTOR-FLEET-VM" in r for r in mine)
    assert any("nat: -A POSTROUTING -s " + net.guest_ip in r and "MASQUERADE" in r for r in mine)
    # EXECUTOR_FIRECRACKER_BANDWIDTH_EGRESS=500000 bytes/s: the first FORWARD rule drops what is above the rate.
    forward = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S", "FORWARD"], capture_output=True,
                             text=True, check=True).stdout.splitlines()  # fmt: skip
    assert forward[1].startswith("-A FORWARD -i fc-deadbeef -m hashlimit --hashlimit-above 488kb/s"), forward
    assert forward[1].endswith("-j DROP")
    qdisc = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", net.tap], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert "tbf" in qdisc and "rate 8Mbit" in qdisc  # EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS=1000000 bytes/s
    network.teardown(net.tap, "executor-7-0a1b2c3d", ns)
    assert network.taps(ns) == ["fc-deadbeef"]
    assert network.rules_of("executor-7-0a1b2c3d", ns) == []
    assert len(network.rules_of("executor-8-deadbeef", ns)) == 5  # 2 FORWARD, 2 INPUT, POSTROUTING
    network.teardown(other.tap, "deadbeef", ns)  # by the token alone, as the janitor does for a lost directory
    assert network.rules_of("executor-8-deadbeef", ns) == []


def test_guest_agent_is_valid_shell() -> None:
    proc = subprocess.run(["busybox", "sh", "-n", str(assets.AGENT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_install_vm_for_firecracker_unpacks_an_elf_kernel(tmp_path: Path) -> None:
    """Firecracker boots only uncompressed ELF kernels: install vm unpacks the bzImage's payload (lz4 on Debian)."""
    vh.require_tools()
    out: list[str] = []
    assert assets.install_vm(settings(tmp_path, EXECUTOR_VM_BACKEND="firecracker"), False, out.append) == 0, out
    vmlinux = (tmp_path / "assets" / "vmlinux").read_bytes()
    assert vmlinux[:4] == b"\x7fELF" and len(vmlinux) > (tmp_path / "assets" / "vmlinuz").stat().st_size


@pytest.mark.docker
def test_install_vm_from_local_docker_images(tmp_path: Path, docker_engine: DockerEngine) -> None:
    """EXECUTOR_FIRECRACKER_KERNEL_IMAGE and EXECUTOR_FIRECRACKER_IMAGE as local Docker images: the kernel and its
    modules are unpacked, the base becomes base.ext4 labelled for the guest; never a pull."""
    vh.require_tools()
    client = docker_engine.client()
    try:
        version = vh.import_kernel_image(client)
        vh.import_marker_image(client)
    finally:
        client.close()
    images = {"EXECUTOR_FIRECRACKER_KERNEL_IMAGE": vh.KERNEL_IMAGE, "EXECUTOR_FIRECRACKER_IMAGE": vh.MARKER_IMAGE}
    s = vh.vm_settings(tmp_path / "assets", tmp_path / "work", docker_engine.host, **images)
    out: list[str] = []
    assert assets.install_vm(s, False, out.append) == 0, out
    assert out[-1].startswith(f"✓ vm: kernel image {vh.KERNEL_IMAGE}, initramfs with the guest agent, base image")
    root = tmp_path / "assets"
    assert (root / "vmlinuz").read_bytes() == (Path("/boot") / f"vmlinuz-{version}").read_bytes()
    assert b"virtio_blk.ko" in (root / "initrd.img").read_bytes()
    label = subprocess.run(["e2label", str(root / "base.ext4")], capture_output=True, text=True, check=True)
    assert label.stdout.strip() == "fleet-base"
    marker = subprocess.run(["debugfs", "-R", "cat /etc/marker", str(root / "base.ext4")], capture_output=True)
    assert marker.stdout == b"marker image\n"
    assert assets.install_vm(s, False, out.append) == 0
    assert out[-1].startswith("✓ vm: already done")

    missing = vh.vm_settings(tmp_path / "other", tmp_path / "work", docker_engine.host,
                             EXECUTOR_FIRECRACKER_KERNEL_IMAGE="acme/no-such-kernel:1")  # fmt: skip
    out.clear()
    assert assets.install_vm(missing, False, out.append) == 1
    assert out == [
        "✗ vm: EXECUTOR_FIRECRACKER_KERNEL_IMAGE='acme/no-such-kernel:1': neither a file nor an image in the Docker "
        "Engine; give a kernel path such as /boot/vmlinuz-6.1.0-27-cloud-amd64, or `docker load` an image carrying "
        "/boot/vmlinuz-<version> and /lib/modules/<version>"
    ]
    no_base = vh.vm_settings(tmp_path / "other", tmp_path / "work", docker_engine.host,
                             EXECUTOR_FIRECRACKER_IMAGE="acme/no-such-base:1")  # fmt: skip
    out.clear()
    assert assets.install_vm(no_base, False, out.append) == 1
    assert out[0].startswith("✗ vm: EXECUTOR_FIRECRACKER_IMAGE='acme/no-such-base:1': no such image in the Docker")
    assert not (tmp_path / "other").exists()  # nothing half-written
