"""Examples in docs/operations.md and docs/control-plane.md run as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fleet_server import FleetServer

ROOT = Path(__file__).resolve().parent.parent.parent
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def bash_blocks(doc: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "docs" / doc).read_text(), flags=re.S)


def run(block: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, capture_output=True, text=True)


def test_operations_examples_run() -> None:
    if not shutil.which("promtool"):
        pytest.fail("promtool not found; install it with: apt-get install -y prometheus (or run `make test`)")
    blocks = bash_blocks("operations.md")
    assert len(blocks) == 2
    for block in blocks:
        r = run(block, ENV)
        assert r.returncode == 0, block + r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") >= 4  # rules and the three configs


def test_control_plane_stream_example_runs(fleet_server: FleetServer) -> None:
    if not shutil.which("curl"):
        pytest.fail("curl not found; install it with: apt-get install -y curl")
    (block,) = [b for b in bash_blocks("control-plane.md") if "text/event-stream" in b]
    with fleet_server.api() as api:
        job = api.post("/api/v1/jobs", json={"queue": "batches", "cliSteps": [{"commands": ["true"]}]}).json()
        api.post(f"/api/v1/jobs/{job['id']}/cancel")  # finished: the stream ends by itself
    env = {**ENV, "FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    r = run(block, env)
    assert r.returncode == 0, r.stderr
    assert "event: job" in r.stdout and "event: end" in r.stdout and '"state":"canceled"' in r.stdout
