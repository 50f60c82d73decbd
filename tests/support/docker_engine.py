"""A private Docker Engine for tests: `dockerd` on its own unix socket and data root, plus a busybox image.

No registry is reachable, so the image is made with `docker import` from a busybox-static root filesystem.
The daemon runs without a bridge and without touching iptables, so several can run beside a developer's own.
Given a network namespace of the test's own (tests/support/netns.py), it runs in it with a bridge and iptables
(NAT, published ports, user-defined networks): both are then the namespace's, not the host's.

    engine = start_docker_engine(Path(tempfile.mkdtemp()))
    os.environ["DOCKER_HOST"] = engine.host
    ...
    engine.stop()
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.support.netns import NetNamespace

INSTALL_HINT = "apt-get install -y docker.io busybox-static (or `make test`, which installs them)"
IMAGE = "busybox:latest"
# Only ever inside a namespace of the test's own, whose only other interface is `lo`: nothing there to clash with.
NETNS_BRIDGE_IP = "10.213.0.1/24"
NETNS_ADDRESS_POOL = "base=10.213.128.0/17,size=24"


@dataclass
class DockerEngine:
    host: str  # DOCKER_HOST value: unix:///.../docker.sock
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    image: str = IMAGE

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="1.41", timeout=120)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def containers(self, label: str = "executor-fleet.prefix") -> list[str]:
        """Names of the containers (running or not) carrying this label."""
        client = self.client()
        try:
            # The low-level list: the high-level one inspects each container, racing with their removal.
            return [c["Names"][0].lstrip("/") for c in client.api.containers(all=True, filters={"label": label})]
        finally:
            client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            client = self.client()
            try:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            except Exception:  # a daemon that does not answer any more is killed below anyway
                pass
            finally:
                client.close()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def unmount_below(root: Path) -> None:
    """Unmount what dockerd left under its root: it bind-mounts the network namespace of `--network host`
    containers at exec/netns/default and does not unmount it when it stops."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in reversed(points):  # the innermost first
        if point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)


def busybox_rootfs_tar() -> bytes:
    """A tar of a minimal root filesystem: busybox-static with a symlink per applet."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError(f"busybox not found; {INSTALL_HINT}")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc", "data", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def import_busybox(client: docker.DockerClient, image: str = IMAGE) -> None:
    repository, _, tag = image.partition(":")
    client.api.import_image_from_data(
        busybox_rootfs_tar(), repository=repository, tag=tag or "latest", changes=["ENV PATH=/bin", 'CMD ["sh"]']
    )


def _network_flags(netns: NetNamespace | None) -> list[str]:
    if netns is None:
        return ["--bridge", "none", "--iptables=false", "--ip-forward=false"]
    # dockerd calls `iptables` from PATH (Debian: iptables-nft); check it works in the namespace before it does.
    if shutil.which("iptables") is None:
        raise RuntimeError("iptables not found; apt-get install -y iptables")
    listed = netns.run("iptables", "-t", "nat", "-L", "-n")
    if listed.returncode != 0:
        raise RuntimeError(
            f"iptables does not work in network namespace {netns.name}: {listed.stderr.strip()} (on a kernel without"
            " nf_tables: update-alternatives --set iptables /usr/sbin/iptables-legacy)"
        )
    return ["--bip", NETNS_BRIDGE_IP, "--default-address-pool", NETNS_ADDRESS_POOL]


def start_docker_engine(
    workdir: Path | None = None, timeout: float = 60, netns: NetNamespace | None = None, busybox: bool = True
) -> DockerEngine:
    """dockerd on a socket under workdir; in netns (entered with nsenter: `ip netns exec` would hide the cgroup
    mounts dockerd needs behind a fresh /sys) with a bridge and iptables, else without either."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError(f"dockerd not found; {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise RuntimeError("dockerd needs root to run containers; run the tests as root")
    # unix socket paths are limited to ~107 bytes: keep the root short.
    root = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    log_path = root / "dockerd.log"
    argv = [
        dockerd,
        "--host", f"unix://{sock}",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        *_network_flags(netns),
    ]  # fmt: skip
    if netns is not None:
        argv = netns.enter_argv(*argv)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = DockerEngine(f"unix://{sock}", root, proc, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{engine.log()[-3000:]}")
        client = engine.client()
        try:
            client.ping()
            if busybox:
                import_busybox(client)
            return engine
        except Exception:
            if time.monotonic() > deadline:
                engine.stop()
                raise RuntimeError(f"dockerd did not answer within {timeout}s:\n{engine.log()[-3000:]}") from None
            time.sleep(0.2)
        finally:
            client.close()
