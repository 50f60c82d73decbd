"""The kernel and the base image from local Docker images (EXECUTOR_FIRECRACKER_KERNEL_IMAGE, _IMAGE).

Only images already in the host's Docker Engine: `executor install vm` runs offline and never pulls. A kernel image
carries `/boot/vmlinuz-<version>` and `/lib/modules/<version>/` (as a Debian root filesystem with a linux-image
package does, or an image made `FROM scratch` with just those); a base image is any root filesystem, converted to
`base.ext4` the way step images are (rootfs.py). docs/executor.md, "MicroVM isolation", says the same.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from executor_agent.config import ExecutorSettings
from executor_agent.vm.rootfs import export_to_ext4, unpack


class SourceMissing(Exception):
    """The configured value names neither a file nor a local image; the message says what to do."""


def engine(settings: ExecutorSettings) -> docker.DockerClient:
    base_url = settings.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return docker.DockerClient(base_url=base_url, version="1.41", timeout=300)


def local_image(client: docker.DockerClient, ref: str) -> dict[str, Any] | None:
    """The image's inspection if the Engine has it; None if it has not (no pull)."""
    try:
        return dict(client.api.inspect_image(ref))
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 400:  # not a valid reference at all
            return None
        raise


def kernel_image_id(client: docker.DockerClient, ref: str) -> str:
    try:
        info = local_image(client, ref)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SourceMissing(
            f"EXECUTOR_FIRECRACKER_KERNEL_IMAGE={ref!r}: cannot ask the Docker Engine for it ({exc}); check DOCKER_HOST"
        ) from None
    if info is None:
        raise SourceMissing(
            f"EXECUTOR_FIRECRACKER_KERNEL_IMAGE={ref!r}: neither a file nor an image in the Docker Engine; give a "
            "kernel path such as /boot/vmlinuz-6.1.0-27-cloud-amd64, or `docker load` an image carrying "
            "/boot/vmlinuz-<version> and /lib/modules/<version>"
        )
    return str(info["Id"])


def kernel_from_image(client: docker.DockerClient, ref: str, root: Path) -> tuple[Path, Path]:
    """(vmlinuz, its modules directory), unpacked from the image under root/kernel-image."""
    image_id = kernel_image_id(client, ref)
    dest = root / "kernel-image"
    staging = Path(tempfile.mkdtemp(prefix="kernel-", dir=root))
    try:
        # tar exits 2 when a pattern matches nothing (most images have only one of the two module paths): what
        # is missing is said below, more clearly than tar would.
        unpack(client, image_id, staging, ("boot/vmlinuz-*", "lib/modules/*", "usr/lib/modules/*"))
        kernels = sorted((staging / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise SourceMissing(f"EXECUTOR_FIRECRACKER_KERNEL_IMAGE={ref!r}: the image has no /boot/vmlinuz-<version>")
        kernel = kernels[-1]
        version = kernel.name.removeprefix("vmlinuz-")
        modules = next(
            (d for d in (staging / "lib/modules" / version, staging / "usr/lib/modules" / version) if d.is_dir()),
            None,
        )
        if modules is None or not (modules / "modules.dep").is_file():
            raise SourceMissing(
                f"EXECUTOR_FIRECRACKER_KERNEL_IMAGE={ref!r}: the image has {kernel.name} but no "
                f"/lib/modules/{version}/modules.dep"
            )
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        kernel.replace(dest / kernel.name)
        modules.replace(dest / version)
        return dest / kernel.name, dest / version
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def base_image_id(client: docker.DockerClient, ref: str, seed_default: str) -> str:
    """The base image's ID; "" for the seed's default name when this host has no such image (image-less steps
    then run in the initramfs's busybox). Any other name must be a local image."""
    info = local_image(client, ref)
    if info is not None:
        return str(info["Id"])
    if ref.startswith(seed_default):
        return ""
    raise SourceMissing(
        f"EXECUTOR_FIRECRACKER_IMAGE={ref!r}: no such image in the Docker Engine; `docker load` it (install vm "
        f"never pulls), or unset the variable to run image-less steps in the initramfs's busybox"
    )


def write_base(client: docker.DockerClient, image_id: str, dest: Path) -> None:
    export_to_ext4(client, image_id, dest, "fleet-base")
