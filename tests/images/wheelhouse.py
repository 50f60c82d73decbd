"""Wheels for an air-gapped install of this project: its dependencies (cached between sessions) and its own wheel
(built fresh every session from the working tree, so the tests install the code under test).

The containers the provisioning script runs in have no network; `--wheelhouse` makes pip install from these files
only, which is the air-gapped route the script offers to users.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.images.rootfs import CACHE_DIR

PROJECT = Path(__file__).resolve().parents[2]


class WheelhouseError(RuntimeError):
    pass


def _pip_wheel(dest: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise WheelhouseError(f"pip wheel {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


def dependency_wheelhouse() -> Path:
    """Wheels of every dependency of the project (not the project itself), keyed by pyproject.toml."""
    key = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    dest = CACHE_DIR / f"wheelhouse-{key}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "wheelhouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dest.exists():
            with tempfile.TemporaryDirectory(prefix="tmp-wheelhouse-", dir=CACHE_DIR) as tmp:
                # The build tools too: pip builds the project's sdist or source tree in an isolated environment.
                _pip_wheel(Path(tmp), str(PROJECT), "setuptools>=68", "wheel")
                for own in Path(tmp).glob("executor_fleet-*.whl"):
                    own.unlink()
                shutil.copytree(tmp, dest)
            # Wheelhouses of earlier pyproject.toml versions are not needed any more.
            for stale in CACHE_DIR.glob("wheelhouse-*"):
                if stale.is_dir() and stale != dest:
                    shutil.rmtree(stale, ignore_errors=True)
    return dest


def project_wheel(dest: Path) -> Path:
    """Build this working tree's wheel into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    _pip_wheel(dest, "--no-deps", str(PROJECT))
    wheels = sorted(dest.glob("executor_fleet-*.whl"))
    if len(wheels) != 1:
        raise WheelhouseError(f"expected one executor_fleet wheel in {dest}, found {wheels}")
    return wheels[0]
