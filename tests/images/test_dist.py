"""`make dist`'s artefacts installed as a user would, in the Debian bookworm container (rootfs from debootstrap) and
on the private Docker Engine: the one-file executor downloaded and checked against its SHA256SUM, the executor
image run as draft 002 shows, the DEB installed with dpkg, the /opt tarball of seed 004.

The artefacts are built once per session by the `dist` fixture of conftest.py (EXECUTOR_FLEET_DIST_DIR skips it).
"""

from __future__ import annotations

import functools
import http.server
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executor_agent.helpers import b64, logs, submit, wait_state
from tests.images.conftest import PROJECT, VERSION, Container, Dist, docker, import_dist_images
from tests.support.docker_engine import DockerEngine
from tests.support.fleet_server import FleetServer, start_fleet_server

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="session")
def imported(engine: DockerEngine, dist: Dist) -> str:
    """The images of dist/images/import.sh, imported into the test engine."""
    import_dist_images(engine, dist)
    return f"executor-fleet/executor:{VERSION}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FleetServer]:
    server = start_fleet_server(tmp_path / "server", stalled_job_seconds="30")
    yield server
    server.stop()


@pytest.fixture
def host_box(engine: DockerEngine, debian_image: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    """A fresh bookworm container on the host's network (it reaches the loopback servers of the test)."""
    name = f"efl-dist-{request.node.name[:40].replace('_', '-')}"
    docker(engine, "rm", "-f", name)
    docker(engine, "run", "-d", "--name", name, "--network", "host", debian_image, "sleep", "infinity")
    yield Container(engine, name)
    docker(engine, "rm", "-f", name)


@pytest.fixture
def offline_box(
    engine: DockerEngine, debian_image: str, dist: Dist, request: pytest.FixtureRequest
) -> Iterator[Container]:
    """A fresh bookworm container without network, dist/ mounted read-only at /dist."""
    name = f"efl-dist-{request.node.name[5:40].replace('_', '-')}"
    docker(engine, "rm", "-f", name)
    docker(engine, "run", "-d", "--name", name, "--network", "none", "-v", f"{dist.path}:/dist:ro",
           debian_image, "sleep", "infinity")  # fmt: skip
    yield Container(engine, name)
    docker(engine, "rm", "-f", name)


@pytest.fixture
def download_server(dist: Dist) -> Iterator[str]:
    """dist/ served over HTTP on loopback, as the release bucket of seed 000."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dist.path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def env_flags(values: dict[str, str]) -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def test_dist_prints_progress_and_build_info(dist: Dist) -> None:
    assert dist.output.startswith(f"dist: executor-fleet {VERSION} (")
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]", "dist: done"):
        assert step in dist.output, dist.output
    info = dict(line.split(": ", 1) for line in (dist.path / "info.txt").read_text().splitlines())
    head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert info["version"] == VERSION
    assert info["commit"].removesuffix("-dirty") == head.strip()
    assert info["build_date"].endswith("Z") and info["build_date"][:2] == "20"
    assert (dist.path / "executor").stat().st_mode & 0o111


def test_dist_fails_with_one_line_when_a_tool_is_missing(tmp_path: Path) -> None:
    # PATH without dpkg-deb (and everything else): the build stops before doing any work.
    done = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "dist.py"), "--out", str(tmp_path / "d")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["dist: error: git is missing: install it with apt-get install -y git"]
    assert not (tmp_path / "d").exists()


def test_downloaded_executor_validates_and_runs_a_job(
    host_box: Container, download_server: str, server: FleetServer
) -> None:
    # Seed 000, step 1, with its checksum file.
    host_box.sh(
        f"cd /tmp && curl -sfLo executor {download_server}/executor"
        f" && curl -sfLo executor_SHA256SUM {download_server}/executor_SHA256SUM"
        " && sha256sum -c executor_SHA256SUM && chmod +x executor && mv executor /usr/local/bin"
    )
    # A tampered download fails the same check: the check above is not vacuous.
    code, out = host_box.sh(
        "cd /tmp && cp /usr/local/bin/executor executor && printf x >> executor && sha256sum -c executor_SHA256SUM",
        check=False,
    )
    assert code != 0 and "FAILED" in out
    # Only the distribution's Python: none of the executor's libraries are installed in the container.
    assert host_box.sh("python3 --version")[1].strip() == "Python 3.11.2"
    assert host_box.sh("python3 -c 'import pydantic'", check=False)[0] != 0
    env = env_flags(
        {
            "EXECUTOR_FRONTEND_URL": server.url,
            "EXECUTOR_FRONTEND_PASSWORD": server.executor_token,
            "EXECUTOR_QUEUE_NAME": "batches",
            "EXECUTOR_RUNTIME": "shell",
            "EXECUTOR_TRUSTED_QUEUES": "batches",
            "EXECUTOR_METRICS_ADDR": "127.0.0.1:0",
            "EXECUTOR_NUM_TOTAL_JOBS": "1",
            "EXECUTOR_WORKSPACE_ROOT": "/var/tmp/ws",
        }
    )
    out = host_box.sh(f"env {env} executor validate")[1]
    assert f"✓ server {server.url} reachable, executor secret accepted" in out, out
    job_id = submit(
        server,
        files={"greeting.txt": {"content": b64("hello from the one-file executor\n")}},
        dockerSteps=[{"key": "say", "image": "ignored", "commands": ["cat greeting.txt", "python3 --version"]}],
    )
    code, out = host_box.sh(f"env {env} timeout 300 executor run", check=False)
    assert code == 0, out
    record = wait_state(server, job_id)
    entries = logs(server, job_id)
    assert record["state"] == "completed", (record, entries)
    said = str(entries.get("step.docker.say", {}).get("out", ""))
    assert "hello from the one-file executor" in said and "Python 3.11.2" in said, entries


def test_executor_image_runs_a_job_on_the_host_engine(
    engine: DockerEngine, imported: str, server: FleetServer, tmp_path: Path
) -> None:
    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    socket = engine.host.removeprefix("unix://")
    name = "efl-dist-executor"
    docker(engine, "rm", "-f", name)
    # Draft 002's command; --network host only because the test engine has no bridge (the server is on loopback).
    docker(
        engine, "run", "-d", "--name", name, "--restart", "always", "--network", "host",
        "-v", f"{socket}:/var/run/docker.sock",
        "-v", f"{workspaces}:/workspaces",
        "-e", f"EXECUTOR_DOCKER_HOST_MOUNT_PATH={workspaces}",
        "-e", f"EXECUTOR_FRONTEND_URL={server.url}",
        "-e", f"EXECUTOR_REGISTRATION_TOKEN={server.executor_token}",
        "-e", "EXECUTOR_QUEUE_NAME=batches",
        "-e", "EXECUTOR_BACKEND=docker",
        "-e", "EXECUTOR_MAX_NUM_JOBS=1",
        "-e", "EXECUTOR_JOB_MEMORY=256M",
        "-e", "EXECUTOR_JOB_NUM_CPUS=1",
        "-e", "EXECUTOR_METRICS_ADDR=127.0.0.1:0",
        imported,
    )  # fmt: skip
    try:
        job_id = submit(
            server,
            files={"in.txt": {"content": b64("through the host engine\n")}},
            dockerSteps=[
                {"key": "write", "image": "busybox", "commands": ["cat in.txt > out.txt", "hostname"]},
                {"key": "read", "image": "busybox", "commands": ["cat out.txt"]},
            ],
        )
        record = wait_state(server, job_id, timeout=180)
        entries = logs(server, job_id)
        assert record["state"] == "completed", (record, entries, docker(engine, "logs", name))
        # The second step saw the first one's file: both were containers of the host engine, on the same workspace.
        read = [e for k, e in entries.items() if k.endswith("read")]
        assert read and "through the host engine" in str(read[0]["out"]), entries
        assert docker(
            engine, "inspect", "-f", "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}", name
        ).split() == [
            "true",
            "always",
        ]
    finally:
        docker(engine, "rm", "-f", name)


def test_deb_installs_the_executor_its_unit_and_env_file(offline_box: Container) -> None:
    box = offline_box
    out = box.sh(f"dpkg -i /dist/executor-fleet-executor_{VERSION}_amd64.deb")[1]
    assert "set EXECUTOR_FRONTEND_URL" in out and "/etc/executor-fleet/executor.env" in out
    listing = box.sh("dpkg -L executor-fleet-executor")[1].split()
    for path in ("/usr/bin/executor", "/lib/systemd/system/executor.service", "/etc/executor-fleet/executor.env"):
        assert path in listing
    assert box.sh("stat -c '%a %U' /etc/executor-fleet/executor.env /usr/bin/executor")[1].split() == [
        "600", "root", "755", "root"
    ]  # fmt: skip
    unit = box.sh("cat /lib/systemd/system/executor.service")[1]
    assert "EnvironmentFile=/etc/executor-fleet/executor.env" in unit
    assert "ExecStart=/usr/bin/executor run" in unit
    code, out = box.sh("systemd-analyze verify /lib/systemd/system/executor.service", check=False)
    assert code == 0 and "executor.service" not in out, out
    # The same check fails on a unit whose program is missing: the verification above is not vacuous.
    code, out = box.sh(
        "sed 's#^ExecStart=.*#ExecStart=/usr/bin/missing-executor run#' /lib/systemd/system/executor.service"
        " > /tmp/broken.service && systemd-analyze verify /tmp/broken.service",
        check=False,
    )
    assert code != 0 and "/usr/bin/missing-executor" in out, out
    assert "Usage: executor" in box.sh("executor --help")[1]
    # The conffile survives a removal (it holds the secret) and goes with a purge.
    box.sh("echo EXECUTOR_QUEUE_NAME=batches >> /etc/executor-fleet/executor.env && dpkg -r executor-fleet-executor")
    assert box.sh("test ! -e /usr/bin/executor && grep -c QUEUE /etc/executor-fleet/executor.env")[1].strip() == "2"
    box.sh("dpkg --purge executor-fleet-executor && test ! -e /etc/executor-fleet/executor.env")


def test_tarball_unpacks_to_the_opt_layout(offline_box: Container) -> None:
    box = offline_box
    # Seed 004's steps 2 and 3.
    box.sh(
        "mkdir -p /opt/executor-fleet"
        f" && tar -C /opt/executor-fleet -zxf /dist/executor-fleet-executor-{VERSION}-linux-amd64.tar.gz"
        " && cp /opt/executor-fleet/etc/executor.service /etc/systemd/system/executor.service"
    )
    assert box.sh("stat -c '%n %a' /opt/executor-fleet/bin/executor /opt/executor-fleet/etc/executor.env")[
        1
    ].split() == ["/opt/executor-fleet/bin/executor", "755", "/opt/executor-fleet/etc/executor.env", "600"]
    unit = box.sh("cat /etc/systemd/system/executor.service")[1]
    assert "EnvironmentFile=/opt/executor-fleet/etc/executor.env" in unit
    code, out = box.sh("systemd-analyze verify /etc/systemd/system/executor.service", check=False)
    assert code == 0 and "executor.service" not in out, out
    assert "Usage: executor" in box.sh("/opt/executor-fleet/bin/executor --help")[1]
