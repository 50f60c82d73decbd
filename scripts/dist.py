#!/usr/bin/env python3
"""`make dist`: every installable form of executor-fleet, into dist/ (docs/executor.md, "Installing").

    dist/executor                 one file: the executor for linux-amd64, runs on the distribution's python3 (3.11)
    dist/executor_SHA256SUM       `sha256sum -c` input for it
    dist/info.txt                 version, commit, build date
    dist/executor-fleet.pex       one file: `fleet` and `metrics-publisher` (PEX_MODULE picks one)
    dist/*.deb, dist/*.tar.gz     the executor as a Debian package and as the /opt tarball of seed 004
    dist/images/                  root filesystems for `docker import`, import.sh, docker-compose.yml

Usage: scripts/dist.py [--out DIR] [--no-images]. Prints one line per step; a missing tool stops it with one line.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dist_images import BASE_PACKAGES, POSTGRES_PACKAGES, DistError, base_rootfs  # noqa: E402
from dist_packages import build_deb, build_images, build_tarball  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "images" / "dist"
# Debian bookworm's python3 is CPython 3.11: the compiled wheels (pydantic-core, psycopg-binary…) must be cp311.
TARGET_PYTHON = "CPython==3.11.*"


LINES: list[str] = []


def log(line: str) -> None:
    LINES.append(line)
    print(line, flush=True)


def require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise DistError(f"{tool} is missing: install it with {package}")
    return found


def pex_binary() -> str:
    beside = Path(sys.executable).parent / "pex"  # the project venv's, from pyproject.toml [dev]
    if beside.exists():
        return str(beside)
    return require("pex", "`make dist` (it installs the dev dependencies) or `pip install pex`")


def check_python() -> None:
    impl, (major, minor) = platform.python_implementation(), sys.version_info[:2]
    if (impl, major, minor) != ("CPython", 3, 11):
        raise DistError(
            f"building needs CPython 3.11 (Debian bookworm's python3, whose wheels the files carry); this is {impl} "
            f"{major}.{minor}: run `make dist PYTHON=python3.11`"
        )


def run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = [line for line in (done.stderr or done.stdout).splitlines() if not line.startswith("WARNING: Location")]
        raise DistError(f"{what} failed (exit {done.returncode}): {' | '.join(tail[-5:])}")


def build_info() -> dict[str, str]:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {
        "version": version,
        "commit": commit + ("-dirty" if dirty else ""),
        "build_date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": "linux-amd64",
        "python": TARGET_PYTHON,
    }


def stage_sources(tmp: Path, packages: tuple[str, ...], version: str) -> Path:
    """The project's packages as plain sources, plus the dist-info that gives `importlib.metadata` our version."""
    src = tmp / "src"
    for package in packages:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    info = src / f"executor_fleet-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: executor-fleet\nVersion: {version}\n")
    return src


def constraints(tmp: Path) -> Path:
    """The versions installed in the environment running this script (the ones the tests ran with)."""
    done = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DistError(f"pip freeze failed: {done.stderr.strip()[-300:]}")
    path = tmp / "constraints.txt"
    path.write_text("".join(line + "\n" for line in done.stdout.splitlines() if "==" in line))
    return path


def pex(out: Path, src: Path, requirements: list[str], entry: list[str]) -> None:
    argv = [
        pex_binary(),
        *requirements,
        "--constraints", str(constraints(src.parent)),
        "-D", str(src),
        *entry,
        # Resolved with this CPython 3.11 only; at run time the file takes the target's python3 from PATH and any
        # CPython but 3.11 is refused (its compiled wheels would not load).
        "--python", sys.executable,
        "--python-shebang", "/usr/bin/env python3",
        "--interpreter-constraint", TARGET_PYTHON,
        "-o", str(out),
    ]  # fmt: skip
    run(argv, f"pex {out.name}")


def build(out: Path, images: bool) -> None:
    check_python()
    for tool, package in (("git", "apt-get install -y git"), ("dpkg-deb", "apt-get install -y dpkg"),
                          ("tar", "apt-get install -y tar")):  # fmt: skip
        require(tool, package)
    if images:
        require("debootstrap", "apt-get install -y debootstrap")
    pex_binary()
    info = build_info()
    version = info["version"]
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dist-") as tmp_name:
        tmp = Path(tmp_name)
        log(f"dist: executor-fleet {version} ({info['commit'][:12]}) into {out}")
        log("[1/6] executor (one file, PEX; resolving wheels for CPython 3.11)")
        src = stage_sources(tmp / "executor", ("executor_agent",), version)
        pex(out / "executor", src, ["-r", str(PACKAGING / "executor-requirements.txt")],
            ["-e", "executor_agent.cli:main"])  # fmt: skip
        digest = hashlib.sha256((out / "executor").read_bytes()).hexdigest()
        (out / "executor_SHA256SUM").write_text(f"{digest}  executor\n")
        (out / "info.txt").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
        log(f"      {out / 'executor'}: {(out / 'executor').stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}…")
        log("[2/6] executor-fleet.pex (fleet server and metrics-publisher)")
        src = stage_sources(tmp / "all", ("fleet", "executor_agent", "metrics_publisher"), version)
        requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        pex(out / "executor-fleet.pex", src, list(requirements), [])
        log(f"      {out / 'executor-fleet.pex'}: {(out / 'executor-fleet.pex').stat().st_size / 1e6:.1f} MB")
        log("[3/6] Debian package")
        deb = build_deb(out, version, tmp / "deb")
        log(f"      {deb}")
        log("[4/6] tarball (/opt layout)")
        tarball = build_tarball(out, version, tmp / "tar")
        log(f"      {tarball}")
        if images:
            log("[5/6] Debian base root filesystems")
            for packages in (BASE_PACKAGES, POSTGRES_PACKAGES):
                base_rootfs(lambda line: log("    " + line), packages)
            log("[6/6] images: root filesystems for docker import")
            for line in build_images(out, version, lambda p: base_rootfs(lambda _: None, p), tmp / "images"):
                log(f"      {line}")
        else:
            log("[5/6] [6/6] images skipped (--no-images)")
    log(f"dist: done in {time.monotonic() - started:.0f} s")
    (out / "build.log").write_text("".join(line + "\n" for line in LINES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)")
    parser.add_argument("--no-images", action="store_true", help="skip the container images (no debootstrap)")
    args = parser.parse_args()
    try:
        build(args.out.resolve(), images=not args.no_images)
    except DistError as exc:
        print(f"dist: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
