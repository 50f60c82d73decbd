"""The Firecracker backend's API calls, against a recording stand-in HTTP server on a unix socket.

Why a stand-in: Firecracker needs hardware KVM, and the machines this suite runs on have none (a software /dev/kvm
without vmx/svm; QEMU's `-accel kvm` fails there too), so the binary cannot start a VM here. What is checked is what
we send: the exact paths and bodies of Firecracker's API (boot-source, machine-config, drives, network-interfaces
with rate limiters, actions InstanceStart), in order, and that a refusal surfaces Firecracker's fault_message.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from executor_agent.vm import firecracker


class Recorder(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse: dict[str, str] = {}  # path -> fault_message
        super().__init__(path, Handler)


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def address_string(self) -> str:  # unix sockets have no client address
        return "unix"

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append(("PUT", self.path, body))
        fault = self.server.refuse.get(self.path)
        if fault:
            payload = json.dumps({"fault_message": fault}).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    server = Recorder(str(tmp_path / "api.sock"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def spec(tmp_path: Path) -> firecracker.FirecrackerSpec:
    return firecracker.FirecrackerSpec(
        kernel=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd.img",
        boot_args=["console=ttyS0", "reboot=k", "fleet.chan=ttyS0"],
        cpus=4,
        memory_mib=12288,
        scratch=tmp_path / "scratch.ext4",
        images=[tmp_path / "img1.ext4", tmp_path / "img2.ext4"],
        tap="fc-0a1b2c3d",
        mac="02:fc:00:11:22:33",
        ingress=524288000,
        egress=1048576,
    )


def test_configure_sends_the_exact_calls(recorder: Recorder, tmp_path: Path) -> None:
    firecracker.configure(firecracker.FirecrackerAPI(tmp_path / "api.sock"), spec(tmp_path))
    assert recorder.calls == [
        ("PUT", "/boot-source", {
            "kernel_image_path": str(tmp_path / "vmlinux"),
            "initrd_path": str(tmp_path / "initrd.img"),
            "boot_args": "console=ttyS0 reboot=k fleet.chan=ttyS0",
        }),
        ("PUT", "/machine-config", {"vcpu_count": 4, "mem_size_mib": 12288, "smt": False}),
        ("PUT", "/drives/d0", {"drive_id": "d0", "path_on_host": str(tmp_path / "scratch.ext4"),
                               "is_root_device": False, "is_read_only": False}),
        ("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": str(tmp_path / "img1.ext4"),
                               "is_root_device": False, "is_read_only": True}),
        ("PUT", "/drives/d2", {"drive_id": "d2", "path_on_host": str(tmp_path / "img2.ext4"),
                               "is_root_device": False, "is_read_only": True}),
        ("PUT", "/network-interfaces/eth0", {
            "iface_id": "eth0", "host_dev_name": "fc-0a1b2c3d", "guest_mac": "02:fc:00:11:22:33",
            # EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS -> rx (into the VM), _EGRESS -> tx; bytes refilled each second.
            "rx_rate_limiter": {"bandwidth": {"size": 524288000, "refill_time": 1000}},
            "tx_rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 1000}},
        }),
        ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ]  # fmt: skip


def test_unlimited_bandwidth_sends_no_limiter(recorder: Recorder, tmp_path: Path) -> None:
    s = spec(tmp_path)
    s.ingress = s.egress = 0
    firecracker.configure(firecracker.FirecrackerAPI(tmp_path / "api.sock"), s)
    iface = next(body for _, path, body in recorder.calls if path == "/network-interfaces/eth0")
    assert "rx_rate_limiter" not in iface and "tx_rate_limiter" not in iface


def test_refusal_names_the_call_and_the_fault(recorder: Recorder, tmp_path: Path) -> None:
    recorder.refuse["/machine-config"] = "Invalid vCPU count: 64"
    with pytest.raises(firecracker.FirecrackerError, match=r"PUT /machine-config: 400: Invalid vCPU count: 64"):
        firecracker.configure(firecracker.FirecrackerAPI(tmp_path / "api.sock"), spec(tmp_path))
    # Nothing after the refused call: no InstanceStart of a half-configured VM.
    assert [path for _, path, _ in recorder.calls] == ["/boot-source", "/machine-config"]


def test_argv_without_jailer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither jailer nor firecracker installed
    argv = firecracker.argv("executor-7-0a1b2c3d", tmp_path / "api.sock", tmp_path / "jail")
    assert argv == ["firecracker", "--id", "executor-7-0a1b2c3d", "--api-sock", str(tmp_path / "api.sock")]


def test_argv_under_the_jailer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("jailer", "firecracker"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = firecracker.argv("executor-7-0a1b2c3d", tmp_path / "api.sock", tmp_path / "jail")
    assert argv[:3] == [str(tmp_path / "jailer"), "--id", "executor-7-0a1b2c3d"]
    assert argv[argv.index("--exec-file") + 1] == str(tmp_path / "firecracker")
    assert argv[argv.index("--chroot-base-dir") + 1] == str(tmp_path / "jail")


def test_stage_links_the_files_into_the_jail(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"\x7fELF kernel")
    root = firecracker.jail_root(tmp_path / "jail", "executor-7-0a1b2c3d")
    assert root == tmp_path / "jail" / "firecracker" / "executor-7-0a1b2c3d" / "root"  # the jailer's layout
    inside = firecracker.stage({"vmlinux": kernel}, root)
    assert inside == {"vmlinux": Path("/vmlinux")}
    assert (root / "vmlinux").stat().st_ino == kernel.stat().st_ino  # a hard link: no copy of a 20G disk
