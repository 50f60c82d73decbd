"""The packaged forms of `make dist`: the Debian package, the /opt tarball (seed 004's layout) and the images.

All of them carry the same one-file `dist/executor`; their sources are the files under images/dist/.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from dist_images import POSTGRES_PACKAGES, DistError, Image, import_script, text_file, write_image

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "images" / "dist"
DEB_NAME = "executor-fleet-executor"
DEB_ENV = "/etc/executor-fleet/executor.env"
OPT = "/opt/executor-fleet"
REPOSITORY = "executor-fleet"
PEX_ROOT = "/var/cache/executor-fleet/pex"


def unit(binary: str, env_file: str) -> str:
    return (PACKAGING / "executor.service.in").read_text().replace("@BIN@", binary).replace("@ENV@", env_file)


def _put(root: Path, inside: str, content: bytes | Path, mode: int) -> None:
    path = root / inside.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_bytes(content)
    path.chmod(mode)


def build_deb(out: Path, version: str, tmp: Path) -> Path:
    """executor-fleet-executor_<version>_amd64.deb: /usr/bin/executor, executor.service, the env file (a conffile)."""
    root = tmp / "root"
    _put(root, "/usr/bin/executor", out / "executor", 0o755)
    _put(root, "/lib/systemd/system/executor.service", unit("/usr/bin/executor", DEB_ENV).encode(), 0o644)
    # It will hold the shared secret: readable by root only.
    _put(root, DEB_ENV, (PACKAGING / "executor.env").read_bytes(), 0o600)
    doc = f"/usr/share/doc/{DEB_NAME}"
    _put(root, f"{doc}/info.txt", out / "info.txt", 0o644)
    size_kb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) // 1024 + 1
    control = (PACKAGING / "deb" / "control.in").read_text()
    _put(root, "/DEBIAN/control", control.replace("@VERSION@", version).replace("@SIZE@", str(size_kb)).encode(), 0o644)
    _put(root, "/DEBIAN/conffiles", f"{DEB_ENV}\n".encode(), 0o644)
    for script in ("postinst", "prerm", "postrm"):
        _put(root, f"/DEBIAN/{script}", PACKAGING / "deb" / script, 0o755)
    deb = out / f"{DEB_NAME}_{version}_amd64.deb"
    done = subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise DistError(f"dpkg-deb --build failed: {done.stderr.strip()}")
    return deb


def build_tarball(out: Path, version: str, tmp: Path) -> Path:
    """executor-fleet-executor-<version>-linux-amd64.tar.gz, to unpack with `tar -C /opt/executor-fleet -zxf`."""
    root = tmp / "root"
    _put(root, "bin/executor", out / "executor", 0o755)
    _put(root, "etc/executor.env", (PACKAGING / "executor.env").read_bytes(), 0o600)
    _put(root, "etc/executor.service", unit(f"{OPT}/bin/executor", f"{OPT}/etc/executor.env").encode(), 0o644)
    _put(root, "info.txt", out / "info.txt", 0o644)
    tarball = out / f"{DEB_NAME}-{version}-linux-amd64.tar.gz"

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = 0, 0, "root", "root"
        return info

    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=owned_by_root)
    return tarball


def _wrapper(module: str) -> str:
    return f'#!/bin/sh\nPEX_MODULE={module} exec {OPT}/executor-fleet.pex "$@"\n'


def images(out: Path, version: str, tmp: Path) -> list[Image]:
    tmp.mkdir(parents=True, exist_ok=True)
    tini = '"/usr/bin/tini", "--"'
    common = [f"ENV PEX_ROOT={PEX_ROOT}", "ENV PATH=/usr/local/bin:/usr/bin:/bin", "WORKDIR /"]
    wrappers = {
        f"/usr/local/bin/{name}": (text_file(tmp, name, _wrapper(module)), 0o755)
        for name, module in (("fleet", "fleet.cli.main:main"), ("metrics-publisher", "metrics_publisher.cli:main"))
    }
    state = text_file(tmp, "README", "fleet server's SQLite database (FLEET_DATABASE_URL); mount a volume here.\n")
    control_plane = {
        f"{OPT}/executor-fleet.pex": (out / "executor-fleet.pex", 0o755),
        "/var/lib/executor-fleet/README": (state, 0o644),
        **wrappers,
    }
    return [
        Image(
            f"{REPOSITORY}/executor:{version}",
            {"/usr/local/bin/executor": (out / "executor", 0o755), f"{OPT}/info.txt": (out / "info.txt", 0o644)},
            [
                *common,
                # Jobs go to the Docker Engine whose socket is mounted (draft 002); no microVMs in a container.
                "ENV EXECUTOR_USE_FIRECRACKER=false",
                "ENV EXECUTOR_WORKSPACE_ROOT=/workspaces",
                "EXPOSE 9999",
                f'ENTRYPOINT [{tini}, "/usr/local/bin/executor"]',
                'CMD ["run"]',
            ],
        ),
        Image(
            f"{REPOSITORY}/fleet-server:{version}",
            control_plane,
            [
                *common,
                "ENV FLEET_HTTP_ADDR=0.0.0.0:3080",
                "ENV FLEET_DATABASE_URL=sqlite:////var/lib/executor-fleet/fleet.db",
                "EXPOSE 3080",
                f'ENTRYPOINT [{tini}, "/usr/local/bin/fleet"]',
                'CMD ["server"]',
            ],
        ),
        Image(
            f"{REPOSITORY}/metrics-publisher:{version}",
            control_plane,
            [*common, f'ENTRYPOINT [{tini}, "/usr/local/bin/metrics-publisher"]'],
        ),
        Image(
            f"{REPOSITORY}/postgres:{version}",
            {"/usr/local/bin/postgres-entrypoint": (PACKAGING / "postgres-entrypoint.sh", 0o755)},
            [
                "ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin",
                "ENV PGDATA=/var/lib/postgresql/data",
                "EXPOSE 5432",
                f'ENTRYPOINT [{tini}, "/usr/local/bin/postgres-entrypoint"]',
            ],
            POSTGRES_PACKAGES,
        ),
    ]


def build_images(out: Path, version: str, base: Callable[[tuple[str, ...]], Path], tmp: Path) -> list[str]:
    """Root filesystem tarballs, import.sh and docker-compose.yml under dist/images; returns a line per file."""
    dest = out / "images"
    dest.mkdir(parents=True, exist_ok=True)
    built: list[tuple[Image, Path]] = []
    lines = []
    for image in images(out, version, tmp):
        tarball = write_image(base(image.packages), image, dest)
        built.append((image, tarball))
        lines.append(f"{tarball.name} ({tarball.stat().st_size / 1e6:.0f} MB) -> {image.name}")
    script = dest / "import.sh"
    script.write_text(import_script(built))
    script.chmod(0o755)
    compose = (PACKAGING / "docker-compose.yml").read_text().replace("@VERSION@", version)
    (dest / "docker-compose.yml").write_text(compose)
    return [*lines, script.name, "docker-compose.yml"]
