"""The QEMU backend: `qemu-system-x86_64 -M microvm`, KVM where usable, else TCG (EXECUTOR_VM_ALLOW_EMULATION).

What makes Debian's cloud kernel boot on microvm under TCG (measured on QEMU 7.2, kernel 6.1): microvm's ACPI is
"hardware reduced", so Linux sets up no PIT timer and needs the TSC frequency to calibrate the local APIC timer.
KVM tells it; TCG does not, and the boot hangs at "Marking TSC unstable". We pass the host's TSC frequency
(`tsc_early_khz=`; TCG's guest TSC runs at the host's rate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

BINARY = "qemu-system-x86_64"


@dataclass
class QemuSpec:
    name: str
    kernel: Path
    initrd: Path
    cpus: int
    memory_mib: int
    scratch: Path
    images: list[Path]  # read-only step image disks
    agent_socket: Path
    console_log: Path
    kvm: bool
    tap: str = ""
    mac: str = ""
    boot_args: list[str] = field(default_factory=list)
    console_socket: Path | None = None  # `executor test-vm`: the serial console on a socket instead of a file


def argv(spec: QemuSpec, binary: str = BINARY) -> list[str]:
    serial = f"unix:{spec.console_socket},server=on,wait=off" if spec.console_socket else f"file:{spec.console_log}"
    args = [
        binary,
        "-name", spec.name,
        "-M", "microvm,isa-serial=on",
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-accel", "kvm" if spec.kvm else "tcg",
        "-cpu", "host" if spec.kvm else "max",
        "-smp", str(spec.cpus),
        "-m", f"{spec.memory_mib}M",
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", " ".join(spec.boot_args),
        "-serial", serial,
        "-device", "virtio-serial-device",
        "-chardev", f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=fleet",
    ]  # fmt: skip
    disks = [(spec.scratch, False), *((p, True) for p in spec.images)]
    for i, (path, readonly) in enumerate(disks):
        drive = f"id=d{i},file={path},format=raw,if=none,cache=unsafe" + (",readonly=on" if readonly else "")
        args += ["-drive", drive, "-device", f"virtio-blk-device,drive=d{i}"]
    if spec.tap:
        args += ["-netdev", f"tap,id=n0,ifname={spec.tap},script=no,downscript=no"]
        args += ["-device", f"virtio-net-device,netdev=n0,mac={spec.mac}"]
    return args


def host_tsc_khz(cpuinfo: str | None = None) -> int:
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    match = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.M)
    return int(float(match.group(1)) * 1000) if match else 2_000_000


def tcg_boot_args() -> list[str]:
    return [f"tsc_early_khz={host_tsc_khz()}"]
