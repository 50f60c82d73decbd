"""The VM startup scripts, rendered by terraform and run by bash against a scratch root with stub system commands."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.terraform.harness import Terraform
from tests.terraform.render import TRICKY_PASSWORD, _hcl, env_module, render, templatefile, write_script

pytestmark = pytest.mark.terraform

AGENT_ENV = {
    "EXECUTOR_FRONTEND_URL": "https://fleet.example.com",
    "EXECUTOR_FRONTEND_PASSWORD": TRICKY_PASSWORD,
    "EXECUTOR_QUEUE_NAME": "codeintel",
    "EXECUTOR_MAXIMUM_NUM_JOBS": "4",
    "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL": "http://10.0.1.4:5000",
}

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >>"$STUB_LOG"
"""


@pytest.fixture(scope="module")
def scripts(terraform_no_provider: Terraform) -> dict[str, str]:
    return render(
        terraform_no_provider,
        "startup",
        modules=env_module("env", AGENT_ENV, mirror="http://10.0.1.4:5000"),
        outputs={
            "aws_executor": templatefile(
                "aws/modules/executors/startup.sh.tftpl",
                {
                    "agent_setup": "module.env.setup_script",
                    "region": _hcl("us-west-2"),
                    "autoscaling_group_name": _hcl("executors-codeintel"),
                    "lifecycle_hook_name": _hcl("executors-codeintel-drain"),
                    "cloudwatch_agent_config": _hcl("{}"),
                },
            ),
            "google_executor": templatefile(
                "google/modules/executors/startup.sh.tftpl", {"agent_setup": "module.env.setup_script"}
            ),
            "google_shutdown": templatefile("google/modules/executors/shutdown.sh.tftpl", {}),
            "mirror": templatefile(
                "common/docker-mirror-startup/startup.sh.tftpl",
                {
                    "data_disk_devices": _hcl(["/dev/disk/by-id/nvme-data", "/dev/xvdf"]),
                    "upstream_url": _hcl("https://registry-1.docker.io"),
                    "registry_image": _hcl("registry:2"),
                    "node_exporter_image": _hcl("prom/node-exporter:v1.8.2"),
                },
            ),
        },
    )


def run_script(script: str, tmp_path: Path, root_var: str, stubs: dict[str, str]) -> tuple[Path, list[str]]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in stubs.items():
        write_script(bin_dir / name, body)
    log = tmp_path / "calls.log"
    path = write_script(tmp_path / "startup.sh", script)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", root_var: str(root), "STUB_LOG": str(log), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"startup script failed:\n{proc.stdout}\n{proc.stderr}"
    return root, log.read_text().splitlines() if log.exists() else []


def read_env_file_like_a_shell(path: Path, name: str) -> str:
    proc = subprocess.run(
        ["bash", "-c", f'set -a; . "$1"; printf %s "${name}"', "-", str(path)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_executor_env_file_survives_quotes_dollars_and_spaces(scripts: dict[str, str], tmp_path: Path) -> None:
    root, calls = run_script(
        scripts["aws_executor"], tmp_path, "EXECUTOR_STARTUP_ROOT", {"systemctl": STUB, "curl": STUB, "aws": STUB}
    )
    env_file = root / "etc/systemd/system/executor.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600", "the env file holds the executor secret"
    assert not (root / "etc/systemd/system/executor.env.tmp").exists()
    for name, value in AGENT_ENV.items():
        assert read_env_file_like_a_shell(env_file, name) == value, name
    # systemd's EnvironmentFile parser follows POSIX shell quoting, which shlex implements independently of bash.
    parsed = dict(shlex.split(line)[0].split("=", 1) for line in env_file.read_text().splitlines())
    assert parsed == AGENT_ENV


def test_executor_script_points_docker_at_mirror_and_starts_the_agent(scripts: dict[str, str], tmp_path: Path) -> None:
    root, calls = run_script(
        scripts["aws_executor"], tmp_path, "EXECUTOR_STARTUP_ROOT", {"systemctl": STUB, "curl": STUB, "aws": STUB}
    )
    assert json.loads((root / "etc/docker/daemon.json").read_text()) == {"registry-mirrors": ["http://10.0.1.4:5000"]}
    assert calls.index("systemctl restart docker.service") < calls.index("systemctl enable --now executor.service")
    assert "systemctl enable --now executor-drain.service" in calls
    drain = root / "usr/local/bin/executor-drain"
    assert os.access(drain, os.X_OK)
    subprocess.run(["bash", "-n", str(drain)], check=True)
    assert "--lifecycle-hook-name 'executors-codeintel-drain'" in drain.read_text()
    assert "ExecStart=/usr/local/bin/executor-drain" in (root / "etc/systemd/system/executor-drain.service").read_text()


def test_google_executor_script_writes_env_file_and_starts_the_agent(scripts: dict[str, str], tmp_path: Path) -> None:
    # `systemctl list-unit-files` succeeds in the stub, as on an image with the Ops Agent installed.
    root, calls = run_script(scripts["google_executor"], tmp_path, "EXECUTOR_STARTUP_ROOT", {"systemctl": STUB})
    env_file = root / "etc/systemd/system/executor.env"
    for name, value in AGENT_ENV.items():
        assert read_env_file_like_a_shell(env_file, name) == value, name
    assert json.loads((root / "etc/docker/daemon.json").read_text()) == {"registry-mirrors": ["http://10.0.1.4:5000"]}
    assert calls == [
        "systemctl restart docker.service",
        "systemctl list-unit-files google-cloud-ops-agent.service",
        "systemctl enable --now google-cloud-ops-agent.service",
        "systemctl daemon-reload",
        "systemctl enable --now executor.service",
    ]


def test_google_shutdown_script_stops_the_agent(scripts: dict[str, str], tmp_path: Path) -> None:
    _, calls = run_script(scripts["google_shutdown"], tmp_path, "UNUSED", {"systemctl": STUB})
    assert calls == ["systemctl stop executor.service"]


MIRROR_STUBS = {
    # blkid finds a filesystem only after mkfs has made one, as on a real disk.
    "blkid": '#!/bin/sh\necho "blkid $*" >>"$STUB_LOG"\n[ -e "$1.fs" ]\n',
    "mkfs.ext4": '#!/bin/sh\necho "mkfs.ext4 $*" >>"$STUB_LOG"\nfor a; do last=$a; done\ntouch "$last.fs"\n',
    "mountpoint": "#!/bin/sh\nexit 1\n",
    "mount": STUB,
    "docker": STUB,
    "sleep": "#!/bin/sh\n:\n",
}


def test_mirror_formats_the_data_disk_on_first_boot_only(scripts: dict[str, str], tmp_path: Path) -> None:
    disk = tmp_path / "root/dev/xvdf"
    disk.parent.mkdir(parents=True)
    disk.touch()
    root, calls = run_script(scripts["mirror"], tmp_path, "MIRROR_STARTUP_ROOT", MIRROR_STUBS)
    root, calls = run_script(scripts["mirror"], tmp_path, "MIRROR_STARTUP_ROOT", MIRROR_STUBS)  # the next boot
    assert [c for c in calls if c.startswith("mkfs.ext4")] == [f"mkfs.ext4 -q -L registry-data {disk}"]
    assert (root / "etc/fstab").read_text().count("LABEL=registry-data /mnt/registry ext4") == 1
    runs = [c for c in calls if c.startswith("docker run")]
    assert len([c for c in runs if c.endswith("registry:2")]) == 2
    assert any("REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io" in c for c in runs)
    assert all("/mnt/registry:/var/lib/registry" in c for c in runs if c.endswith("registry:2"))


def test_mirror_stops_when_the_data_disk_never_appears(scripts: dict[str, str], tmp_path: Path) -> None:
    path = write_script(tmp_path / "startup.sh", scripts["mirror"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in MIRROR_STUBS.items():
        write_script(bin_dir / name, body)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MIRROR_STARTUP_ROOT": str(tmp_path), "STUB_LOG": str(tmp_path / "l")}
    proc = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "data disk not found at /dev/disk/by-id/nvme-data or /dev/xvdf" in proc.stderr
    assert not (tmp_path / "l").exists() or "docker run" not in (tmp_path / "l").read_text()


def test_mirror_on_the_mirror_image_configures_its_registry_service(scripts: dict[str, str], tmp_path: Path) -> None:
    """The mirror image (images/mirror) runs Debian's docker-registry: no container, the upstream in mirror.env."""
    disk = tmp_path / "root/dev/xvdf"
    disk.parent.mkdir(parents=True)
    disk.touch()
    unit = tmp_path / "root/lib/systemd/system/docker-registry.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    root, calls = run_script(scripts["mirror"], tmp_path, "MIRROR_STARTUP_ROOT", {**MIRROR_STUBS, "systemctl": STUB})
    assert not [c for c in calls if c.startswith("docker")]
    assert "systemctl restart docker-registry.service" in calls
    env = (root / "etc/docker/registry/mirror.env").read_text()
    assert env == "REGISTRY_PROXY_REMOTEURL='https://registry-1.docker.io'\n"
