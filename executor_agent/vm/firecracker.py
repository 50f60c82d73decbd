"""The Firecracker backend: its HTTP API on a unix socket, under the jailer when it is installed.

The guest's only char device is the serial console (Firecracker's stdin/stdout), so the guest agent speaks the
same framed protocol there (fleet.chan=ttyS0, raw mode) and kernel messages are silenced after boot.
Firecracker needs usable KVM; it cannot run on the machines the suite runs on, which test these calls against
a recording stand-in server (tests/executor_agent/test_vm_firecracker.py).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BINARY = "firecracker"
JAILER = "jailer"
REFILL_MS = 1000


class FirecrackerError(Exception):
    """The API refused a call; the message has Firecracker's fault_message."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class FirecrackerAPI:
    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def wait_ready(self, deadline: float) -> None:
        while not self.socket_path.exists():
            if time.monotonic() > deadline:
                raise FirecrackerError(f"firecracker did not open its API socket {self.socket_path}")
            time.sleep(0.02)

    def put(self, path: str, body: dict[str, Any]) -> None:
        conn = _UnixConnection(str(self.socket_path), self.timeout)
        try:
            conn.request("PUT", path, json.dumps(body), {"Content-Type": "application/json", "Accept": "*/*"})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 300:
            try:
                message = json.loads(text).get("fault_message", text)
            except ValueError:
                message = text
            raise FirecrackerError(f"PUT {path}: {resp.status}: {message}")


@dataclass
class FirecrackerSpec:
    kernel: Path
    initrd: Path
    boot_args: list[str]
    cpus: int
    memory_mib: int
    scratch: Path
    images: list[Path]
    tap: str = ""
    mac: str = ""
    ingress: int = 0  # bytes/s into the VM (rx); 0 = unlimited
    egress: int = 0  # bytes/s out of the VM (tx)


def _limiter(rate: int) -> dict[str, Any] | None:
    # Token bucket refilled every second with `rate` bytes: the sustained rate is EXECUTOR_FIRECRACKER_BANDWIDTH_*.
    return {"bandwidth": {"size": rate, "refill_time": REFILL_MS}} if rate else None


def calls(spec: FirecrackerSpec) -> list[tuple[str, dict[str, Any]]]:
    """The API calls that configure and start one VM, in order."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("/boot-source", {
            "kernel_image_path": str(spec.kernel),
            "initrd_path": str(spec.initrd),
            "boot_args": " ".join(spec.boot_args),
        }),
        ("/machine-config", {"vcpu_count": spec.cpus, "mem_size_mib": spec.memory_mib, "smt": False}),
    ]  # fmt: skip
    disks = [(spec.scratch, False), *((p, True) for p in spec.images)]
    for i, (path, readonly) in enumerate(disks):
        drive_id = f"d{i}"
        out.append((f"/drives/{drive_id}", {
            "drive_id": drive_id, "path_on_host": str(path), "is_root_device": False, "is_read_only": readonly,
        }))  # fmt: skip
    if spec.tap:
        iface: dict[str, Any] = {"iface_id": "eth0", "host_dev_name": spec.tap, "guest_mac": spec.mac}
        for key, rate in (("rx_rate_limiter", spec.ingress), ("tx_rate_limiter", spec.egress)):
            limiter = _limiter(rate)
            if limiter:
                iface[key] = limiter
        out.append(("/network-interfaces/eth0", iface))
    out.append(("/actions", {"action_type": "InstanceStart"}))
    return out


def configure(api: FirecrackerAPI, spec: FirecrackerSpec) -> None:
    for path, body in calls(spec):
        api.put(path, body)


def jailed() -> bool:
    return shutil.which(JAILER) is not None


def jail_root(chroot_base: Path, name: str) -> Path:
    """Where the jailer chroots the monitor: <chroot base>/<exec file name>/<id>/root."""
    return chroot_base / BINARY / name / "root"


def stage(files: dict[str, Path], root: Path) -> dict[str, Path]:
    """Hard-link (or copy across filesystems) the VM's files into the jail; returns their paths as the jailed
    monitor sees them."""
    root.mkdir(parents=True, exist_ok=True)
    inside = {}
    for name, source in files.items():
        target = root / name
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        inside[name] = Path("/") / name
    return inside


def argv(name: str, api_socket: Path, chroot_base: Path) -> list[str]:
    """The monitor's command line: under the jailer (own chroot, cgroup, namespaces) when it is installed.

    Under the jailer, paths in the API calls are inside the chroot: the caller links the files there."""
    jailer = shutil.which(JAILER)
    if jailer:
        return [jailer, "--id", name, "--exec-file", shutil.which(BINARY) or BINARY, "--uid", "0", "--gid", "0",
                "--chroot-base-dir", str(chroot_base), "--", "--api-sock", "/api.sock"]  # fmt: skip
    return [shutil.which(BINARY) or BINARY, "--id", name, "--api-sock", str(api_socket)]
