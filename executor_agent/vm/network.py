"""One tap per VM, NAT'd through the host, with the Docker runtime's egress policy (install.BLOCKED_RANGES).

Every rule carries the VM's name as an iptables comment, so teardown and the janitor find exactly a VM's rules.
`netns`: do all of it inside that network namespace (tests), the VM's monitor is started in it too.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import socket
import subprocess
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from executor_agent.install import egress_policy

_chain_lock = threading.Lock()

TAP_PREFIX = "fc-"
CHAIN = "EXECUTOR-FLEET-VM"


@dataclass
class VMNetwork:
    tap: str
    host_ip: str
    guest_ip: str
    mac: str

    @property
    def guest_arg(self) -> str:
        return f"fleet.net={self.guest_ip}/30,{self.host_ip}"


def plan(token: str) -> VMNetwork:
    """Addresses from the VM's random token: a /30 in 10.213.0.0/16, a locally administered MAC."""
    digest = hashlib.sha256(token.encode()).digest()
    block = int.from_bytes(digest[:2], "big") & 0x3FFF  # 16384 /30s
    base = block * 4
    host = f"10.213.{base >> 8}.{(base & 0xFF) + 1}"
    guest = f"10.213.{base >> 8}.{(base & 0xFF) + 2}"
    mac = "02:fc:" + ":".join(f"{b:02x}" for b in digest[2:6])
    return VMNetwork(f"{TAP_PREFIX}{token}"[:15], host, guest, mac)


def ns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _run(netns: str | None, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ns_prefix(netns), *argv], check=check, capture_output=True, text=True)


def _host_ip(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        return socket.gethostbyname(host) if host else ""
    except OSError:
        return ""


def filter_rules(mirror_url: str, frontend_url: str) -> list[list[str]]:
    """The chain VMs' traffic goes through: install.egress_policy with the fleet server allowed too (a VM clones
    through it), then everything else (the internet) is accepted."""
    return [*egress_policy([mirror_url, frontend_url], "ACCEPT", _host_ip), ["-j", "ACCEPT"]]


def setup(
    net: VMNetwork, name: str, netns: str | None, mirror_url: str, frontend_url: str, ingress: int, egress: int
) -> None:
    tag = ["-m", "comment", "--comment", name]
    _run(netns, ["ip", "tuntap", "add", "dev", net.tap, "mode", "tap"])
    _run(netns, ["ip", "addr", "add", f"{net.host_ip}/30", "dev", net.tap])
    _run(netns, ["ip", "link", "set", net.tap, "up"])
    _run(netns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    with _chain_lock:  # jobs boot concurrently (EXECUTOR_MAXIMUM_NUM_JOBS): one of them makes the shared chain
        if _run(netns, ["iptables", "-n", "-L", CHAIN], check=False).returncode != 0:
            _run(netns, ["iptables", "-N", CHAIN])
            for rule in filter_rules(mirror_url, frontend_url):
                _run(netns, ["iptables", "-A", CHAIN, *rule])
    _run(netns, ["iptables", "-I", "FORWARD", "-i", net.tap, *tag, "-j", CHAIN])
    # The guest reaches nothing on the host itself but what it asked for.
    _run(netns, ["iptables", "-I", "INPUT", "-i", net.tap, *tag, "-j", "DROP"])
    _run(netns, ["iptables", "-I", "INPUT", "-i", net.tap, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                 *tag, "-j", "ACCEPT"])  # fmt: skip
    _run(netns, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", f"{net.guest_ip}/32", "!", "-o", net.tap,
                 *tag, "-j", "MASQUERADE"])  # fmt: skip
    # The tap's egress is the VM's ingress: a token bucket there. The VM's egress arrives on the tap as the host's
    # ingress, where tc can only police with act_police, a module many kernels (and this project's CI hosts) lack;
    # iptables' hashlimit polices the same way (drops above the rate, TCP backs off) and needs nothing extra.
    if ingress:
        _run(netns, ["tc", "qdisc", "add", "dev", net.tap, "root", "tbf", "rate", f"{ingress * 8}bit",
                     "burst", "256kb", "latency", "400ms"])  # fmt: skip
    if egress:
        _run(netns, ["iptables", "-I", "FORWARD", "-i", net.tap, *egress_limit(net.tap, egress), *tag, "-j", "DROP"])


def egress_limit(tap: str, egress: int) -> list[str]:
    """The hashlimit match for more than `egress` bytes/s from a tap (iptables refuses a burst of less than a little
    over one second of rate: two seconds, at least the 256 KiB of the ingress bucket)."""
    rate_kb = max(1, egress // 1024)
    return ["-m", "hashlimit", "--hashlimit-name", tap, "--hashlimit-above", f"{rate_kb}kb/s",
            "--hashlimit-burst", f"{max(2 * rate_kb, 256)}kb", "--hashlimit-mode", "srcip"]  # fmt: skip


def _tagged(line: str, name: str) -> bool:
    """name: the VM's full name, or its random token (an orphaned tap knows only that)."""
    match = re.search(r"--comment (\S+)", line)
    return match is not None and (match.group(1) == name or match.group(1).endswith(f"-{name}"))


def teardown(tap: str, name: str, netns: str | None) -> None:
    """Remove the tap and every rule tagged with the VM's name; no error when they are already gone."""
    _run(netns, ["ip", "link", "del", tap], check=False)
    for table in ("filter", "nat"):
        listing = _run(netns, ["iptables", "-t", table, "-S"], check=False).stdout
        for line in listing.splitlines():
            if line.startswith("-A ") and _tagged(line, name):
                _run(netns, ["iptables", "-t", table, "-D", *line[3:].split()], check=False)


def removal_commands(tap: str, name: str, netns: str | None) -> list[str]:
    """Shell commands that remove the tap and the rules teardown would, for a VM the agent does not own
    (`executor test-vm` prints them; the operator may run them without the executor)."""
    commands = [shlex.join([*ns_prefix(netns), "ip", "link", "del", tap])]
    for found in rules_of(name, netns):
        table, _, rule = found.partition(": ")
        commands.append(shlex.join([*ns_prefix(netns), "iptables", "-t", table, "-D", *shlex.split(rule[3:])]))
    return commands


def taps(netns: str | None) -> list[str]:
    listing = _run(netns, ["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in listing.splitlines() if ":" in line]
    return [n for n in names if n.startswith(TAP_PREFIX)]


def rules_of(name: str, netns: str | None) -> list[str]:
    found = []
    for table in ("filter", "nat"):
        found += [
            f"{table}: {line}"
            for line in _run(netns, ["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
            if _tagged(line, name)
        ]
    return found
