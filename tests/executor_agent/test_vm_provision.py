"""The image's Firecracker provisioning (images/executor/install-firecracker.sh), with a local release tarball.

The real release cannot be fetched here (no internet): the tarball is made here in the release's layout
(release-vX.Y.Z-x86_64/{firecracker,jailer}-vX.Y.Z-x86_64) with stand-in binaries. What is tested is the logic:
the checksum pin, the layout, idempotence, and one-line refusals that install nothing.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "images" / "executor" / "install-firecracker.sh"


def release(tmp_path: Path, version: str = "v1.7.0") -> tuple[Path, str]:
    path = tmp_path / f"firecracker-{version}-x86_64.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for tool in ("firecracker", "jailer"):
            data = f"#!/bin/sh\necho {tool} {version}\n".encode()
            info = tarfile.TarInfo(f"release-{version}-x86_64/{tool}-{version}-x86_64")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)


def test_installs_the_pinned_release_once(tmp_path: Path) -> None:
    tarball, sha = release(tmp_path, "v1.9.1")
    dest = tmp_path / "bin"
    done = run("--tarball", str(tarball), "--sha256", sha, "--dest", str(dest))
    assert done.returncode == 0, done.stderr
    for tool in ("firecracker", "jailer"):
        out = subprocess.run([str(dest / tool)], capture_output=True, text=True, check=True).stdout
        assert out == f"{tool} v1.9.1\n"  # the version comes from the tarball's own layout
    again = run("--tarball", str(tarball), "--sha256", sha, "--dest", str(dest))
    assert again.returncode == 0
    assert f"unchanged {dest}/firecracker" in again.stderr and "wrote" not in again.stderr


def test_wrong_checksum_installs_nothing(tmp_path: Path) -> None:
    tarball, sha = release(tmp_path)
    wrong = "0" * 64
    done = run("--tarball", str(tarball), "--sha256", wrong, "--dest", str(tmp_path / "bin"))
    assert done.returncode == 1
    assert done.stderr == (
        f"install-firecracker: error: {tarball} has sha256 {sha}, not the pinned {wrong}; nothing installed\n"
    )
    assert not (tmp_path / "bin").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--sha256 '' is not a sha256 (64 hex digits); pin the release tarball's checksum"),
        (["--sha256", "a" * 64, "--version", "1.7"], "--version '1.7' is not like v1.7.0"),
        (["--sha256", "a" * 64, "--tarball", "/nonexistent.tgz"], "--tarball /nonexistent.tgz is not a file"),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"install-firecracker: {message}"


def test_provisioning_requires_the_pin_with_a_tarball(tmp_path: Path) -> None:
    script = SCRIPT.with_name("provision-executor.sh")
    done = subprocess.run(["bash", str(script), "--firecracker-tarball", "/x.tgz"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--firecracker-tarball /x.tgz needs --firecracker-sha256" in done.stderr
    assert "--vm-packages" in subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True).stdout
