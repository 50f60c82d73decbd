"""A network namespace of the test's own (`ip netns add`), with only `lo` up: what runs in it has its own
interfaces, routes and iptables tables, so a bridge and NAT rules made there never touch the host's network.

    ns = create_netns("efl-compose")
    ns.run("curl", "-fsS", "http://127.0.0.1:3080/healthz")
    ns.delete()
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")


@dataclass
class NetNamespace:
    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def argv(self, *argv: str) -> list[str]:
        """`ip netns exec NAME ...`: the command in this namespace (and in a mount namespace of its own, with the
        namespace's /sys: fine for clients, not for dockerd, which needs the host's cgroup mounts; see enter_argv)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def enter_argv(self, *argv: str) -> list[str]:
        """`nsenter --net=...`: only the network namespace changes; mounts, /sys and cgroups stay the host's."""
        return ["nsenter", f"--net={self.path}", *argv]

    def run(self, *argv: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), input=stdin, capture_output=True, text=True, timeout=timeout)

    def delete(self) -> None:
        if self.path.exists():
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, text=True, timeout=60)


def create_netns(prefix: str) -> NetNamespace:
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found; apt-get install -y {package}")
    ns = NetNamespace(f"{prefix}-{secrets.token_hex(4)}")
    done = subprocess.run(["ip", "netns", "add", ns.name], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"ip netns add {ns.name} failed (needs root): {done.stderr.strip()}")
    up = ns.run("ip", "link", "set", "lo", "up")
    if up.returncode != 0:
        ns.delete()
        raise RuntimeError(f"ip link set lo up in {ns.name} failed: {up.stderr.strip()}")
    return ns
