"""Container images for `make dist`, without a registry and without a Docker Engine at build time.

Each image is a root filesystem tarball (Debian bookworm from debootstrap, plus our files) that `docker import`
turns into an image; dist/images/import.sh runs the imports with the image's entrypoint and environment (the
`--change` lines below are the whole image configuration). The Debian part is built once and cached under
~/.cache/executor-fleet, keyed by its package list, because debootstrap takes minutes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "bookworm"
# git clones job repositories; python3 (3.11 in bookworm) runs the one-file programs.
BASE_PACKAGES = ("python3", "git", "ca-certificates", "tini")
# The database of the compose file: Debian's PostgreSQL 15, as in production.
POSTGRES_PACKAGES = ("postgresql-15", "tini")
CACHE_DIR = Path(os.environ.get("EXECUTOR_FLEET_TEST_CACHE", Path.home() / ".cache" / "executor-fleet"))


class DistError(RuntimeError):
    """A build step failed; the message is one line saying what and how to fix it."""


@dataclass
class Image:
    name: str  # repository name, tagged with the version
    files: dict[str, tuple[Path, int]]  # path in the image -> (file on disk, mode)
    changes: list[str] = field(default_factory=list)  # `docker import --change` instructions
    packages: tuple[str, ...] = BASE_PACKAGES  # the Debian base it is made from


def apt_mirror() -> str:
    """The Debian archive apt on this host uses (so debootstrap works where apt works)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.M):
            if "security" not in uri:
                return uri.rstrip("/")
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for uri in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", listing.read_text(), flags=re.M):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def base_rootfs(log: Callable[[str], None] = print, packages: tuple[str, ...] = BASE_PACKAGES) -> Path:
    """The cached Debian base tarball with these packages; built with debootstrap when missing (needs root)."""
    key = hashlib.sha256(" ".join((SUITE, *packages)).encode()).hexdigest()[:12]
    tarball = CACHE_DIR / f"dist-base-{SUITE}-{key}.tar"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(tarball.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            log(f"  Debian base: cached {tarball}")
            return tarball
        if shutil.which("debootstrap") is None:
            raise DistError("debootstrap is missing: apt-get install -y debootstrap")
        if os.geteuid() != 0:
            raise DistError("debootstrap needs root: run `make dist` as root (or with sudo)")
        mirror = apt_mirror()
        log(f"  Debian base: debootstrap {SUITE} from {mirror} (minutes, once; cached)")
        with tempfile.TemporaryDirectory(prefix="dist-base-", dir=CACHE_DIR) as tmp:
            root = Path(tmp) / "root"
            cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), mirror]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise DistError(f"debootstrap failed: {done.stderr.strip().splitlines()[-1:]} (mirror {mirror})")
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(root / leftover, ignore_errors=True)
                (root / leftover).mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    return tarball


def write_image(base: Path, image: Image, dest: Path) -> Path:
    """base + the image's files, as one tarball for `docker import`."""
    out = dest / f"{image.name.rsplit('/', 1)[-1].split(':')[0]}.rootfs.tar"
    shutil.copyfile(base, out)
    with tarfile.open(out, "a") as tar:
        for inside, (source, mode) in sorted(image.files.items()):
            info = tar.gettarinfo(str(source), arcname=inside.lstrip("/"))
            info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "root", "root"
            with open(source, "rb") as fh:
                tar.addfile(info, fh)
    return out


def import_script(images: list[tuple[Image, Path]]) -> str:
    """dist/images/import.sh: loads every image into the Docker Engine DOCKER_HOST names (or the default one)."""
    lines = [
        "#!/bin/sh",
        "# Imports the executor-fleet images into the Docker Engine of DOCKER_HOST (or the default). From make dist.",
        "set -eu",
        'cd "$(dirname "$0")"',
    ]
    for image, tarball in images:
        changes = " ".join(f"--change {shlex.quote(c)}" for c in image.changes)
        lines.append(f"docker import {changes} {shlex.quote(tarball.name)} {shlex.quote(image.name)}")
    return "\n".join(lines) + "\n"


def text_file(tmp: Path, name: str, content: str) -> Path:
    path = tmp / name
    path.write_text(content)
    return path
