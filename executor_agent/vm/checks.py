"""Host checks of the microVM runtime for `executor validate`: one (ok, line with the fix) each."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from executor_agent.config import ExecutorSettings
from executor_agent.vm import firecracker, qemu
from executor_agent.vm.assets import assets

KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
KVM_API_VERSION = 12
NO_KVM_FIX = "use a metal or nested-virtualisation machine, or EXECUTOR_USE_FIRECRACKER=false to run jobs in Docker"
HOST_TOOLS = {
    "dmsetup": "dmsetup",
    "losetup": "mount",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "iptables": "iptables",
    "strings": "binutils",
}


def kvm_problem(device: str = "/dev/kvm") -> str | None:
    """Why KVM is not usable here (None = usable): open the device, check the API version, create a VM."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {device}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        if version != KVM_API_VERSION:
            return f"{device} speaks KVM API {version}, not {KVM_API_VERSION}"
        try:
            vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as exc:
            return f"KVM_CREATE_VM on {device} failed: {exc.strerror}"
        os.close(vm)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def kvm_status() -> str | None:
    """Why KVM is not usable for a VM here, or None. A /dev/kvm without hardware virtualisation (vmx/svm) exists on
    some cloud VMs (a software KVM such as kvm-pvm): it answers the ioctls but QEMU cannot run on it."""
    if not _hardware_virt():
        return "this CPU offers no hardware virtualisation (no vmx/svm flag; a metal or nested-virt machine has it)"
    return kvm_problem()


def use_kvm(settings: ExecutorSettings) -> bool:
    return kvm_status() is None


def _hardware_virt() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " vmx" in flags or " svm" in flags


def unavailable_reason(settings: ExecutorSettings) -> str | None:
    """One line: why the microVM runtime cannot run jobs on this host (None = it can)."""
    problem = kvm_status()
    if settings.vm_backend == "firecracker" and problem:
        return f"Firecracker needs KVM and {problem}; {NO_KVM_FIX}"
    if settings.vm_backend == "qemu" and problem and not settings.vm_allow_emulation:
        return (
            f"KVM is not usable ({problem}); {NO_KVM_FIX} "
            "(or EXECUTOR_VM_ALLOW_EMULATION=true with EXECUTOR_VM_BACKEND=qemu: slow, for tests)"
        )
    binary = qemu.BINARY if settings.vm_backend == "qemu" else firecracker.BINARY
    if shutil.which(binary) is None:
        return f"{binary} not found; {install_hint(settings)}"
    return None


def install_hint(settings: ExecutorSettings) -> str:
    if settings.vm_backend == "qemu":
        return "apt-get install -y --no-install-recommends qemu-system-x86"
    return "install the pinned Firecracker release (images/executor/provision-executor.sh does)"


def host_checks(settings: ExecutorSettings) -> list[tuple[bool, str]]:
    lines: list[tuple[bool, str]] = []
    problem = kvm_status()
    if problem is None:
        lines.append((True, "KVM usable (/dev/kvm: API 12, KVM_CREATE_VM works)"))
    elif settings.vm_backend == "qemu" and settings.vm_allow_emulation:
        lines.append((True, f"KVM not usable ({problem}): software emulation (TCG) is in use, slow; for tests"))
    else:
        lines.append((False, f"KVM not usable: {problem} (fix: {NO_KVM_FIX})"))
    binary = qemu.BINARY if settings.vm_backend == "qemu" else firecracker.BINARY
    found = shutil.which(binary)
    lines.append(
        (found is not None, f"{binary}: {found}" if found else f"{binary} missing (fix: {install_hint(settings)})")
    )
    a = assets(settings)
    for path, what in ((a.kernel_for(settings.vm_backend), "kernel"), (a.initrd, "initramfs with the guest agent")):
        ok = path.is_file()
        lines.append((ok, f"{what}: {path}" if ok else f"{what} missing: {path} (fix: executor install vm)"))
    base = a.base
    lines.append((True, f"base image: {base}" if base.is_file() else "base image: the initramfs's busybox (cliSteps)"))
    for tool, package in HOST_TOOLS.items():
        where = shutil.which(tool) or next(
            (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.path.exists(p)), None
        )
        lines.append(
            (where is not None, f"{tool}: {where}" if where else f"{tool} missing (fix: apt-get install -y {package})")
        )
    return lines
