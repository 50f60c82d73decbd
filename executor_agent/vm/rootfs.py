"""Step images become read-only ext4 disks: `docker export` of a created container, then `mkfs.ext4 -d`.

Disks are cached by image ID in <EXECUTOR_VM_ASSETS_DIR>/images; the cache is kept under
EXECUTOR_VM_IMAGE_CACHE_SIZE by removing the least recently used disks (a VM that has one open keeps its copy).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

_lock = threading.Lock()  # one conversion at a time per process: two jobs with one image convert it once


class ImageUnavailable(Exception):
    """The step's image is neither local nor pullable; the message says which and why."""


@dataclass
class ImageDisk:
    path: Path
    label: str  # ext4 label the guest mounts it by
    env: list[str]  # the image's ENV, applied before the step's own
    cached: bool  # True when no conversion was needed


def label_for(image_id: str) -> str:
    return "i" + image_id.removeprefix("sha256:")[:15]  # ext4 labels hold 16 bytes


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def make_ext4(source: Path, dest: Path, label: str, size: int) -> None:
    with open(dest, "wb") as fh:
        fh.truncate(size)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", label, "-E", "lazy_itable_init=1,lazy_journal_init=1",
         "-d", str(source), str(dest)],
        check=True, capture_output=True,
    )  # fmt: skip


def unpack(client: docker.DockerClient, image_id: str, dest: Path, members: tuple[str, ...] = ()) -> tuple[int, str]:
    """`docker export` of a container of the image, unpacked into dest (only `members`, tar wildcards, if given);
    returns tar's exit code and the end of its messages. tar as root keeps owners, modes and device nodes."""
    api = client.api
    created = api.create_container(image_id, command=["/bin/true"])
    try:
        wildcards = ["--wildcards", *members] if members else []
        tar = subprocess.Popen(
            ["tar", "-x", "--numeric-owner", "-C", str(dest), *wildcards], stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert tar.stdin is not None and tar.stderr is not None
        try:
            for chunk in api.export(created["Id"]):
                tar.stdin.write(chunk)
        except BrokenPipeError:
            pass  # tar stopped reading after an error; its exit code and message say which
        tar.stdin.close()
        return tar.wait(), tar.stderr.read().decode(errors="replace")[-500:]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(created["Id"], force=True)


def export_to_ext4(client: docker.DockerClient, image_id: str, dest: Path, label: str) -> None:
    """The image's root filesystem as an ext4 disk at dest (written beside it, then renamed: never half-written)."""
    staging = Path(tempfile.mkdtemp(prefix="rootfs-", dir=dest.parent))
    try:
        tree = staging / "tree"
        tree.mkdir()
        code, messages = unpack(client, image_id, tree)
        if code != 0:
            raise ImageUnavailable(f"unpacking image {image_id}: {messages}")
        for d in ("data", "proc", "sys", "dev", "tmp", "etc"):
            (tree / d).mkdir(exist_ok=True)
        used = _du(tree)
        tmp = staging / "disk.ext4"
        make_ext4(tree, tmp, label, max(64 << 20, int(used * 1.3) + (32 << 20)))
        tmp.replace(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class ImageCache:
    def __init__(self, root: Path, max_bytes: int, client: docker.DockerClient) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.client = client

    def disk(self, image: str, auth: dict[str, Any] | None = None) -> ImageDisk:
        info = self._inspect(image, auth)
        image_id = str(info["Id"])
        env = list((info.get("Config") or {}).get("Env") or [])
        label = label_for(image_id)
        path = self.root / f"{image_id.removeprefix('sha256:')}.ext4"
        with _lock:
            if path.is_file():
                os.utime(path)  # recently used
                return ImageDisk(path, label, env, cached=True)
            self.root.mkdir(parents=True, exist_ok=True)
            self._convert(image_id, path, label)
            self._evict(keep=path)
        return ImageDisk(path, label, env, cached=False)

    def _inspect(self, image: str, auth: dict[str, Any] | None) -> dict[str, Any]:
        api = self.client.api
        try:
            return dict(api.inspect_image(image))
        except docker.errors.ImageNotFound:
            pass
        try:
            # Through the Engine, so EXECUTOR_DOCKER_REGISTRY_MIRROR_URL (its registry-mirrors) applies.
            self.client.images.pull(image, auth_config=auth or None)
            return dict(api.inspect_image(image))
        except docker.errors.APIError as exc:
            raise ImageUnavailable(
                f"image {image!r} is not available: not present locally and pulling it failed: {exc}"
            ) from None

    def _convert(self, image_id: str, dest: Path, label: str) -> None:
        export_to_ext4(self.client, image_id, dest, label)

    def _evict(self, keep: Path) -> None:
        disks = sorted(self.root.glob("*.ext4"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_blocks * 512 for p in disks)
        for disk in disks:
            if total <= self.max_bytes:
                break
            if disk != keep:
                total -= disk.stat().st_blocks * 512
                disk.unlink(missing_ok=True)
