"""Session fixtures of the image tests: our own Docker Engine, the Debian image made with debootstrap, one
container per image in which the provisioning script has run (twice, to check that a rerun changes nothing), and
`make dist`'s artefacts (built once per session: minutes on a cold pip/pex cache; while working on the tests only,
EXECUTOR_FLEET_DIST_DIR=<a dist/ made by `make dist`> skips the build).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images.rootfs import downloaded_debs, ensure_rootfs_tarball
from tests.images.wheelhouse import dependency_wheelhouse, project_wheel
from tests.support.docker_engine import DockerEngine, start_docker_engine

PROJECT = Path(__file__).resolve().parents[2]
IMAGES = PROJECT / "images"
VERSION = "0.1.0"
DEBIAN_IMAGE = "executor-fleet-test/debian:bookworm"

# Everything the provisioning scripts manage: a listing of path, mode, size, mtime and checksum of these files
# must be identical after a second run.
EXECUTOR_MANAGED = (
    "/opt/executor-fleet",
    "/etc/systemd/system",
    "/usr/local/libexec/executor-fleet",
    "/usr/local/bin",
    "/opt/aws",
    "/etc/google-cloud-ops-agent",
    "/var/lib/dpkg/status",
)
MIRROR_MANAGED = ("/etc/docker/registry", "/etc/systemd/system", "/usr/local/bin", "/var/lib/dpkg/status")


def docker(engine: DockerEngine, *args: str, timeout: float = 600) -> str:
    """Run the docker CLI against the test engine; fails the test with the output when the command fails."""
    done = subprocess.run(["docker", "--host", engine.host, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Container:
    engine: DockerEngine
    name: str

    def sh(self, script: str, check: bool = True, user: str = "root", timeout: float = 600) -> tuple[int, str]:
        """Run a bash script in the container; returns (exit code, stdout+stderr)."""
        done = subprocess.run(
            ["docker", "--host", self.engine.host, "exec", "-u", user, self.name, "bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise AssertionError(f"in {self.name}: {script!r} exited {done.returncode}:\n{out}")
        return done.returncode, out

    def listing(self, paths: tuple[str, ...]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return self.sh(
            f"find {quoted} -xdev \\( -type f -o -type l \\) -printf '%p %m %s %T@ %l\\n' 2>/dev/null | LC_ALL=C sort;"
            f" find {quoted} -xdev -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum"
        )[1]


@dataclass
class Dist:
    path: Path
    seconds: float
    output: str


def import_dist_images(engine: DockerEngine, dist: Dist) -> None:
    """The images of dist/images/import.sh, imported into the engine as a user would (DOCKER_HOST)."""
    done = subprocess.run(
        ["sh", str(dist.path / "images" / "import.sh")],
        env={"DOCKER_HOST": engine.host, "PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass
class ProvisionRun:
    container: Container
    first_output: str
    second_output: str
    first_seconds: float
    second_seconds: float
    listing_after_first: str
    listing_after_second: str


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    engine = start_docker_engine()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    prebuilt = os.environ.get("EXECUTOR_FLEET_DIST_DIR")
    if prebuilt:
        return Dist(Path(prebuilt), 0.0, (Path(prebuilt) / "build.log").read_text())
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "dist.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"scripts/dist.py failed:\n{done.stdout}\n{done.stderr}"
    print(f"\nmake dist: {seconds:.0f} s")
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(out)}: {path.stat().st_size / 1e6:.1f} MB")
    return Dist(out, seconds, done.stdout)


@pytest.fixture(scope="session")
def debian_image(engine: DockerEngine) -> str:
    started = time.monotonic()
    tarball = ensure_rootfs_tarball()
    docker(engine, "import", str(tarball), DEBIAN_IMAGE)
    print(f"\ndebian image ready in {time.monotonic() - started:.1f} s")
    return DEBIAN_IMAGE


def _container(engine: DockerEngine, image: str, name: str, *mounts: tuple[Path, str]) -> Container:
    volumes: list[str] = []
    for host, inside in mounts:
        volumes += ["-v", f"{host}:{inside}:ro"]
    # No network: the scripts must get by with the local files they are given (the air-gapped route).
    docker(engine, "run", "-d", "--name", name, "--network", "none", *volumes, image, "sleep", "infinity")
    return Container(engine, name)


def _provision_twice(container: Container, command: str, managed: tuple[str, ...]) -> ProvisionRun:
    started = time.monotonic()
    first = container.sh(command)[1]
    first_seconds = time.monotonic() - started
    listing_first = container.listing(managed)
    started = time.monotonic()
    second = container.sh(command)[1]
    second_seconds = time.monotonic() - started
    print(f"\n{command.split()[0]}: first run {first_seconds:.1f} s, second run {second_seconds:.1f} s")
    return ProvisionRun(
        container, first, second, first_seconds, second_seconds, listing_first, container.listing(managed)
    )


@pytest.fixture(scope="session")
def executor_machine(
    engine: DockerEngine, debian_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProvisionRun]:
    dist = tmp_path_factory.mktemp("dist")
    wheel = project_wheel(dist)
    container = _container(
        engine,
        debian_image,
        "efl-executor-image",
        (IMAGES, "/src/images"),
        (dependency_wheelhouse(), "/wheelhouse"),
        (dist, "/dist"),
        (IMAGES.parent, "/src/project"),
    )
    command = f"/src/images/executor/provision-executor.sh --wheelhouse /wheelhouse /dist/{wheel.name}"
    yield _provision_twice(container, command, EXECUTOR_MANAGED)
    docker(engine, "rm", "-f", container.name)


@pytest.fixture(scope="session")
def mirror_machine(engine: DockerEngine, debian_image: str) -> Iterator[ProvisionRun]:
    debs = downloaded_debs("docker-registry")
    container = _container(engine, debian_image, "efl-mirror-image", (IMAGES, "/src/images"), (debs, "/debs"))
    # The registry comes from a local .deb file (the air-gapped route of --deb-dir), not from the rootfs.
    container.sh("dpkg --purge docker-registry")
    # The upstream is a second, plain registry in the same container (started by the tests): no network here.
    command = "/src/images/mirror/provision-mirror.sh --deb-dir /debs --upstream-url http://127.0.0.1:5002"
    yield _provision_twice(container, command, MIRROR_MANAGED)
    docker(engine, "rm", "-f", container.name)
