"""Session fixtures for the Terraform tests: the terraform binary, the provider mirror and a moto server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.terraform.harness import Terraform, copy_tree, find_provider_mirror, find_terraform
from tests.terraform.moto_fleet import MotoFleet

WANTS_MOTO_FLEET = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[WANTS_MOTO_FLEET] = any("moto_fleet" in getattr(item, "fixturenames", ()) for item in items)


@pytest.fixture(scope="session")
def terraform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terraform]:
    """Terraform on a session-wide copy of the tree, with the AWS provider from the local mirror."""
    if request.config.stash.get(WANTS_MOTO_FLEET, False):
        request.getfixturevalue("moto_fleet")  # starts the moto apply now, to overlap with the other tests
    tf = Terraform(find_terraform(), find_provider_mirror(), copy_tree(tmp_path_factory.mktemp("tf") / "terraform"))
    yield tf
    slowest = sorted(tf.timings.items(), key=lambda item: -item[1])[:8]
    sys.stderr.write("\nterraform timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in slowest) + "\n")


@pytest.fixture(scope="session")
def terraform_no_provider(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """Terraform for configurations that need no provider (template rendering); works without the mirror."""
    return Terraform(find_terraform(), None, copy_tree(tmp_path_factory.mktemp("tfnp") / "terraform"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A moto server of its own on loopback: the AWS APIs the AWS provider and boto3 talk to."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail("moto_server is missing: install moto[server] into the venv (pip install 'moto[server]')")
    port = _free_port()
    log = (log_dir / "moto.log").open("w")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on {url}; see {log.name}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The moto server `examples/single-executor` is applied to."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def spare_moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second, empty moto server, for tests whose resources must not show up in the applied fleet's."""
    with moto_server(tmp_path_factory.mktemp("moto-spare")) as url:
        yield url


@pytest.fixture(scope="session")
def moto_fleet(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoFleet]:
    """`examples/single-executor` being applied against moto in the background; destroyed at the end in any case."""
    fleet = MotoFleet(moto_endpoint, tmp_path_factory.mktemp("moto-tf"))
    fleet.start()
    yield fleet
    fleet.destroy()
