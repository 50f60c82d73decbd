"""`executor install vm`: the kernel, the initramfs (guest agent) and the base image, made offline on the host.

Everything comes from the distribution's packages already installed: the kernel of `linux-image-cloud-amd64`
(/boot/vmlinuz-<version>, its modules in /lib/modules/<version>) and `busybox-static`. The result lives in
EXECUTOR_VM_ASSETS_DIR (docs/executor.md, "MicroVM isolation"):

    vmlinuz          the kernel as packaged (QEMU boots it)
    vmlinux          the same kernel uncompressed (Firecracker boots only ELF kernels); made with lz4/xz/gzip/zstd
    initrd.img       busybox, the virtio/overlay modules and the guest agent as /init (cpio newc)
    base.ext4        optional: the root filesystem of image-less steps (cliSteps), from EXECUTOR_FIRECRACKER_IMAGE
    manifest.json    kernel version and where everything came from
    images/          step images converted to disks (rootfs.py), bounded by EXECUTOR_VM_IMAGE_CACHE_SIZE
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from executor_agent.config import ExecutorSettings
from executor_agent.vm import sources
from executor_agent.vm.rootfs import ImageUnavailable

AGENT = Path(__file__).with_name("guest_agent.sh")
# What the agent needs from the kernel that Debian's cloud kernel builds as modules, in load order.
MODULES = ("virtio_mmio", "virtio_blk", "virtio_console", "overlay", "virtio_net")
SEED_KERNEL_IMAGE = "sourcegraph/ignite-kernel"
SEED_BASE_IMAGE = "sourcegraph/executor-vm"
# Magic bytes of the compressed payload inside a bzImage, and the tool that unpacks it.
DECOMPRESSORS = (
    (b"\x02\x21\x4c\x18", ["lz4", "-dc"]),
    (b"\xfd7zXZ\x00", ["xz", "-dc"]),
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]),
    (b"\x1f\x8b\x08", ["gzip", "-dc"]),
)


class AssetsMissing(Exception):
    """The VM assets are not installed; the message says to run `executor install vm`."""


@dataclass
class Assets:
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def vmlinux(self) -> Path:
        return self.root / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    @property
    def base(self) -> Path:
        return self.root / "base.ext4"

    @property
    def images(self) -> Path:
        return self.root / "images"

    def kernel_for(self, backend: str) -> Path:
        return self.vmlinux if backend == "firecracker" else self.vmlinuz

    def require(self, backend: str) -> None:
        missing = [p.name for p in (self.kernel_for(backend), self.initrd) if not p.is_file()]
        if missing:
            raise AssetsMissing(
                f"{', '.join(missing)} missing in {self.root} (EXECUTOR_VM_ASSETS_DIR); run `executor install vm`"
            )


def assets(settings: ExecutorSettings) -> Assets:
    return Assets(Path(settings.vm_assets_dir))


def kernel_is_image(configured: str) -> bool:
    """A value that is not a path (absolute, ./relative, or an existing file) and not the seed's default names a
    local Docker image."""
    if not configured or configured.startswith((SEED_KERNEL_IMAGE, "/", ".")):
        return False
    return not Path(configured).is_file()


def find_kernel(configured: str) -> tuple[Path, Path]:
    """(kernel image, its modules directory) from EXECUTOR_FIRECRACKER_KERNEL_IMAGE: a path to a vmlinuz whose
    modules are in /lib/modules/<version>, or, for the seed's default image name, the newest installed kernel.
    (A local Docker image is unpacked by install_vm: sources.kernel_from_image.)"""
    if configured and not configured.startswith(SEED_KERNEL_IMAGE):
        path = Path(configured)
        if not path.is_file():
            raise AssetsMissing(
                f"EXECUTOR_FIRECRACKER_KERNEL_IMAGE={configured!r}: no such file; give a kernel path such as "
                "/boot/vmlinuz-6.1.0-27-cloud-amd64 (apt-get install linux-image-cloud-amd64) or a local Docker "
                "image carrying /boot/vmlinuz-<version> and /lib/modules/<version>"
            )
        version = path.name.removeprefix("vmlinuz-")
        return path, Path("/lib/modules") / version
    kernels = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: p.stat().st_mtime)
    if not kernels:
        raise AssetsMissing("no kernel in /boot; apt-get install -y --no-install-recommends linux-image-cloud-amd64")
    kernel = kernels[-1]
    return kernel, Path("/lib/modules") / kernel.name.removeprefix("vmlinuz-")


def module_files(modules_dir: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """The .ko files for wanted and their dependencies, dependencies first (modules.dep order)."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        name, _, rest = line.partition(":")
        deps[name] = rest.split()
    by_module = {Path(n).name.split(".ko")[0].replace("-", "_"): n for n in deps}
    ordered: list[str] = []

    def visit(path: str) -> None:
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        if path not in ordered:
            ordered.append(path)

    for module in wanted:
        if module in by_module:  # built into this kernel otherwise
            visit(by_module[module])
    return [modules_dir / p for p in ordered]


def _cpio_entry(out: io.BytesIO, name: str, mode: int, data: bytes = b"", ino: int = 0) -> None:
    header = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
    out.write(header.encode() + name.encode() + b"\0")
    out.write(b"\0" * (-out.tell() % 4))
    out.write(data)
    out.write(b"\0" * (-out.tell() % 4))


def cpio_archive(files: dict[str, bytes | None], executable: set[str] | None = None) -> bytes:
    """A cpio newc archive (what the kernel unpacks as initramfs): None = directory. Parents come first."""
    out = io.BytesIO()
    for ino, (name, data) in enumerate(sorted(files.items()), start=1):
        if data is None:
            _cpio_entry(out, name, 0o040755, ino=ino)
        else:
            mode = 0o100755 if executable and name in executable else 0o100644
            _cpio_entry(out, name, mode, data, ino=ino)
    _cpio_entry(out, "TRAILER!!!", 0)
    return out.getvalue()


def with_parents(files: dict[str, bytes | None]) -> dict[str, bytes | None]:
    full = dict(files)
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            full.setdefault("/".join(parts[:i]), None)
    return full


def build_initrd(modules_dir: Path, busybox: Path) -> bytes:
    mods = module_files(modules_dir)
    files: dict[str, bytes | None] = {
        "init": AGENT.read_bytes(),
        "bin/busybox": busybox.read_bytes(),
        "lib/modules/order": "".join(f"{m.name.split('.ko')[0]}\n" for m in mods).encode(),
        **{d: None for d in ("dev", "proc", "sys", "run", "tmp", "etc", "sbin", "root", "job")},
    }
    for mod in mods:
        files[f"lib/modules/{mod.name}"] = mod.read_bytes()
    return cpio_archive(with_parents(files), executable={"init", "bin/busybox"})


def extract_vmlinux(vmlinuz: Path) -> bytes:
    """The uncompressed ELF kernel inside a bzImage (what Firecracker boots)."""
    data = vmlinuz.read_bytes()
    if data[:4] == b"\x7fELF":
        return data
    for magic, argv in DECOMPRESSORS:
        at = data.find(magic)
        while at >= 0:
            if shutil.which(argv[0]):
                # Trailing bytes after the stream make the tool complain; its output is still whole.
                proc = subprocess.run(argv, input=data[at:], capture_output=True)
                if proc.stdout[:4] == b"\x7fELF":
                    return proc.stdout
            at = data.find(magic, at + 1)
    raise AssetsMissing(f"cannot find an ELF kernel inside {vmlinuz}; install lz4, xz-utils, zstd and gzip")


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def install_vm(settings: ExecutorSettings, dry_run: bool, echo: Callable[[str], None]) -> int:
    """Prepare EXECUTOR_VM_ASSETS_DIR; idempotent (a second run with the same sources changes nothing)."""
    target = assets(settings)
    client = sources.engine(settings)
    kernel_image = kernel_is_image(settings.firecracker_kernel_image)
    try:
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        if not busybox.is_file():
            raise AssetsMissing("busybox not found; apt-get install -y busybox-static")
        if kernel_image:
            kernel_id = sources.kernel_image_id(client, settings.firecracker_kernel_image)
            kernel_source = f"image {settings.firecracker_kernel_image}"
        else:
            kernel, modules_dir = find_kernel(settings.firecracker_kernel_image)
            if not (modules_dir / "modules.dep").is_file():
                raise AssetsMissing(f"no modules for {kernel.name} in {modules_dir}; reinstall its linux-image package")
            kernel_source, kernel_id = str(kernel), hashlib.sha256(kernel.read_bytes()).hexdigest()
        base_id = _base_image(client, settings.firecracker_image)
    except (AssetsMissing, sources.SourceMissing) as exc:
        echo(f"✗ vm: {exc}")
        return 1
    want = {
        "kernel": kernel_source,
        "kernelSha256": kernel_id,
        "agentSha256": hashlib.sha256(AGENT.read_bytes()).hexdigest(),
        "busyboxSha256": hashlib.sha256(busybox.read_bytes()).hexdigest(),
        "firecracker": settings.vm_backend == "firecracker",
        "baseImage": base_id,
    }
    manifest = target.root / "manifest.json"
    try:
        have = json.loads(manifest.read_text())
    except (OSError, ValueError):
        have = {}
    base = f", base image {settings.firecracker_image}" if base_id else ""
    description = f"kernel {kernel_source}, initramfs with the guest agent{base}, into {target.root}"
    have.pop("kernelVersion", None)  # known only once the kernel is unpacked
    done = target.initrd.is_file() and target.kernel_for(settings.vm_backend).is_file()
    if have == want and done and (target.base.is_file() or not base_id):
        echo(f"✓ vm: already done: {description}")
        return 0
    if dry_run:
        echo(f"would vm: prepare {description}")
        return 0
    try:
        target.root.mkdir(parents=True, exist_ok=True)
        target.images.mkdir(exist_ok=True)
        if kernel_image:
            kernel, modules_dir = sources.kernel_from_image(client, settings.firecracker_kernel_image, target.root)
        want["kernelVersion"] = modules_dir.name
        shutil.copyfile(kernel, target.vmlinuz)
        if want["firecracker"]:
            _write(target.vmlinux, extract_vmlinux(kernel))
        _write(target.initrd, build_initrd(modules_dir, busybox))
        if base_id:
            sources.write_base(client, base_id, target.base)
        else:
            target.base.unlink(missing_ok=True)
        _write(manifest, json.dumps(want, indent=2).encode() + b"\n")
    except (OSError, AssetsMissing, sources.SourceMissing, ImageUnavailable) as exc:
        echo(f"✗ vm: {description}: {exc}")
        return 1
    echo(f"✓ vm: {description}")
    return 0


def _base_image(client: docker.DockerClient, configured: str) -> str:
    """The base image's ID, or "" (image-less steps run in the initramfs's busybox)."""
    try:
        return sources.base_image_id(client, configured, SEED_BASE_IMAGE)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        if configured.startswith(SEED_BASE_IMAGE):
            return ""  # no Engine to ask: the seed's default name only means "the default base"
        raise sources.SourceMissing(
            f"EXECUTOR_FIRECRACKER_IMAGE={configured!r}: cannot ask the Docker Engine for it ({exc}); check DOCKER_HOST"
        ) from None


def job_archive(files: dict[str, bytes | None], executable: set[str]) -> bytes:
    """The per-job cpio appended to initrd.img (the kernel unpacks concatenated archives in order)."""
    return cpio_archive(with_parents(files), executable=executable)


def write_job_initrd(base: Path, job_files: dict[str, bytes | None], executable: set[str], dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the job's env: secrets
    with os.fdopen(fd, "wb") as out, open(base, "rb") as src:
        shutil.copyfileobj(src, out)
        out.write(job_archive(job_files, executable))
