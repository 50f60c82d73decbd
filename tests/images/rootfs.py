"""A Debian bookworm root filesystem made with debootstrap, cached on disk between test sessions.

Building it downloads a few hundred megabytes from the Debian mirror apt already uses and takes minutes, so the
tarball is kept under a stable cache directory keyed by the package list, and an exclusive lock keeps two test
sessions (or xdist workers) from building it at the same time.

The rootfs carries the Debian packages both provisioning scripts install, so that the containers can run them
without network access: the scripts find the packages present and skip apt, which is the air-gapped route.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"

# Everything provision-executor.sh and provision-mirror.sh install, plus systemd for `systemd-analyze verify`.
PACKAGES = (
    "systemd",
    "ca-certificates",
    "curl",
    "git",
    "docker.io",
    "python3",
    "python3-venv",
    "prometheus-node-exporter",
    "rsyslog",
    "docker-registry",
    "procps",
)

CACHE_DIR = Path(os.environ.get("EXECUTOR_FLEET_TEST_CACHE", Path.home() / ".cache" / "executor-fleet"))


class RootfsError(RuntimeError):
    pass


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive URL apt on this host is configured with (deb822 or one-line format)."""
    candidates: list[str] = []
    for path in sorted(sources_dir.glob("sources.list.d/*.sources")):
        candidates += re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.M)
    for path in [sources_dir / "sources.list", *sorted(sources_dir.glob("sources.list.d/*.list"))]:
        if path.is_file():
            candidates += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", path.read_text(), flags=re.M)
    for uri in candidates:
        # The security archive does not carry the base suite.
        if "debian-security" not in uri and re.search(r"/debian/?$", uri):
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def tarball_path() -> Path:
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    return CACHE_DIR / f"debian-{SUITE}-{key}.tar"


def ensure_rootfs_tarball() -> Path:
    """Return the cached rootfs tarball, building it first when missing."""
    tarball = tarball_path()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with open(tarball.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            _build(tarball)
    return tarball


def _build(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed; install it with `apt-get install -y debootstrap`")
    if os.geteuid() != 0:
        raise RootfsError("building the Debian rootfs with debootstrap needs root; run the image tests as root")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            log = (
                (root / "debootstrap" / "debootstrap.log").read_text(errors="replace")[-3000:] if root.exists() else ""
            )
            raise RootfsError(f"debootstrap failed ({mirror}):\n{done.stderr[-3000:]}\n{log}")
        # Package indexes and downloaded .debs are not needed inside the containers and double the size.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(root / leftover, ignore_errors=True)
            (root / leftover).mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def downloaded_debs(*packages: str) -> Path:
    """A folder with the .deb files of these packages, fetched once with `apt-get download` (cached)."""
    dest = CACHE_DIR / ("debs-" + "-".join(sorted(packages)))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "debs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dest.exists():
            with tempfile.TemporaryDirectory(prefix="debs-", dir=CACHE_DIR) as tmp:
                done = subprocess.run(["apt-get", "download", *packages], cwd=tmp, capture_output=True, text=True)
                if done.returncode != 0:
                    raise RootfsError(f"apt-get download {' '.join(packages)} failed:\n{done.stderr[-2000:]}")
                shutil.copytree(tmp, dest)
    return dest
