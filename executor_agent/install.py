"""`executor install all|docker|docker-config|iptables-rules|vm`: prepare a host, idempotently.

Every step first looks whether it is already done; `--dry-run` only prints what would change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from executor_agent.config import ExecutorSettings, RuntimeName

CHAIN = "EXECUTOR-FLEET"
METADATA_ENDPOINT = "169.254.169.254/32"
# Job containers must not reach the cloud's metadata service or the private network the executor lives in.
BLOCKED_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")


@dataclass
class Action:
    component: str
    description: str
    done: Callable[[], bool]
    apply: Callable[[], None]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True)


def _ok(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _install_docker() -> None:
    _run(["apt-get", "update"])
    _run(["apt-get", "install", "-y", "docker.io"])


def docker_actions() -> list[Action]:
    actions = [
        Action(
            "docker",
            "install Docker Engine from the distribution: apt-get install -y docker.io",
            lambda: shutil.which("dockerd") is not None,
            _install_docker,
        )
    ]
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        actions.append(
            Action(
                "docker",
                "enable and start docker.service: systemctl enable --now docker",
                lambda: _ok(["systemctl", "is-active", "--quiet", "docker"]),
                lambda: _run(["systemctl", "enable", "--now", "docker"]),
            )
        )
    return actions


def daemon_json_path() -> Path:
    return Path(os.environ.get("EXECUTOR_DOCKER_DAEMON_JSON", "/etc/docker/daemon.json"))


def desired_daemon_config(current: dict[str, object], mirror: str) -> dict[str, object]:
    config = dict(current)
    existing = config.get("registry-mirrors")
    mirrors = [str(m) for m in existing] if isinstance(existing, list) else []
    if mirror and mirror not in mirrors:
        mirrors.append(mirror)
    if mirrors:
        config["registry-mirrors"] = mirrors
    return config


def docker_config_actions(settings: ExecutorSettings) -> list[Action]:
    mirror = settings.docker_registry_mirror_url
    if not mirror:
        return []
    path = daemon_json_path()

    def current() -> dict[str, object]:
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(desired_daemon_config(current(), mirror), indent=2) + "\n")
        tmp.replace(path)

    return [
        Action(
            "docker-config",
            f"add registry mirror {mirror} to {path} (restart dockerd afterwards)",
            lambda: current() == desired_daemon_config(current(), mirror),
            write,
        )
    ]


def egress_policy(allowed_urls: list[str], verdict: str, host: Callable[[str], str]) -> list[list[str]]:
    """The one egress policy of jobs, containers and VMs alike: answers pass, then the allowed services (the
    mirror, for VMs the fleet server too), then the metadata service and the private ranges are dropped.
    `verdict` lets a packet on (RETURN from a hooked chain, ACCEPT in a chain of its own); `host` names the
    address a URL's rule matches ("" to leave the URL out)."""
    rules = [["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", verdict]]
    for url in allowed_urls:
        address = host(url) if url else ""
        if address:
            parts = urlsplit(url)
            port = str(parts.port or (443 if parts.scheme == "https" else 80))
            rules.append(["-d", f"{address}/32", "-p", "tcp", "--dport", port, "-j", verdict])
    rules.append(["-d", METADATA_ENDPOINT, "-j", "DROP"])
    rules += [["-d", cidr, "-j", "DROP"] for cidr in BLOCKED_RANGES]
    return rules


def iptables_rules(mirror_url: str) -> list[list[str]]:
    """Rules of the EXECUTOR-FLEET chain, hooked into DOCKER-USER, for traffic from job containers."""
    # iptables resolves a host name itself when the rule is added.
    return egress_policy([mirror_url], "RETURN", lambda url: urlsplit(url).hostname or "")


def iptables_actions(settings: ExecutorSettings) -> list[Action]:
    actions = [
        Action(
            "iptables-rules",
            f"create iptables chain {CHAIN}",
            lambda: _ok(["iptables", "-n", "-L", CHAIN]),
            lambda: _run(["iptables", "-N", CHAIN]),
        ),
        Action(
            "iptables-rules",
            f"jump from DOCKER-USER to {CHAIN} for traffic from docker0",
            lambda: _ok(["iptables", "-C", "DOCKER-USER", "-i", "docker0", "-j", CHAIN]),
            lambda: _run(["iptables", "-I", "DOCKER-USER", "-i", "docker0", "-j", CHAIN]),
        ),
    ]
    for rule in iptables_rules(settings.docker_registry_mirror_url):
        actions.append(
            Action(
                "iptables-rules",
                "iptables -A " + " ".join([CHAIN, *rule]),
                lambda rule=rule: _ok(["iptables", "-C", CHAIN, *rule]),  # type: ignore[misc]
                lambda rule=rule: _run(["iptables", "-A", CHAIN, *rule]),  # type: ignore[misc]
            )
        )
    return actions


COMPONENTS = ("docker", "docker-config", "iptables-rules", "vm")
VM_NOT_INSTALLED = "the VM runtime is not installed in this build of the executor; nothing to prepare"


def wanted_components(settings: ExecutorSettings, components: list[str]) -> set[str]:
    """The components asked for; `all` holds `vm` only when the VM runtime is configured."""
    if "all" in components or not components:
        unknown = set(components) - {"all", *COMPONENTS}
        wanted = set(COMPONENTS) - (set() if settings.runtime == RuntimeName.FIRECRACKER else {"vm"})
    else:
        wanted = set(components)
        unknown = wanted - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(sorted(unknown))}; choose from all, {', '.join(COMPONENTS)}")
    return wanted


def plan(settings: ExecutorSettings, components: list[str]) -> list[Action]:
    wanted = wanted_components(settings, components)
    actions = docker_actions() + docker_config_actions(settings) + iptables_actions(settings)
    return [a for a in actions if a.component in wanted]


def install_vm(settings: ExecutorSettings, dry_run: bool, echo: Callable[[str], None], asked: bool = True) -> int:
    """The VM runtime's kernel and base image, prepared by the VM runtime itself (executor_agent.vm.assets).

    In a build without it, `install vm` fails; `install all` only says so (`executor run` then refuses to start
    with the same reason, exit 2, which the unit does not restart)."""
    try:
        from executor_agent.vm.assets import install_vm as prepare
    except ModuleNotFoundError as exc:
        if exc.name and "executor_agent.vm.assets".startswith(exc.name):
            echo(f"✗ vm: {VM_NOT_INSTALLED}" if asked else f"- vm: skipped: {VM_NOT_INSTALLED}")
            return 1 if asked else 0
        raise
    return prepare(settings, dry_run, echo)


def install(settings: ExecutorSettings, components: list[str], dry_run: bool, echo: Callable[[str], None]) -> int:
    failures = 0
    for action in plan(settings, components):
        if action.done():
            echo(f"✓ {action.component}: already done: {action.description}")
        elif dry_run:
            echo(f"would {action.component}: {action.description}")
        else:
            try:
                action.apply()
                echo(f"✓ {action.component}: {action.description}")
            except (OSError, subprocess.CalledProcessError) as exc:
                failures += 1
                echo(f"✗ {action.component}: {action.description}: {exc}")
    # Last: the VM assets may be made from images in the Docker Engine installed above.
    if "vm" in wanted_components(settings, components):
        failures += install_vm(settings, dry_run, echo, asked="vm" in components)
    return 1 if failures else 0
