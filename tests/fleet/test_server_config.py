"""`fleet server` configuration: a bad value is one line naming the variable (or flag), exit 2, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import free_port

TOKEN = "x" * 24


def fleet_server(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    full = {**base, "FLEET_EXECUTORS_ACCESS_TOKEN": TOKEN, "FLEET_API_TOKEN": TOKEN, **env}
    return subprocess.run(
        [sys.executable, "-m", "fleet", "server", *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FLEET_HTTP_ADDR": "no such host:3080"}, "FLEET_HTTP_ADDR"),
        ({"FLEET_LOG_LEVEL": "loud"}, "FLEET_LOG_LEVEL"),
        ({"FLEET_QUEUES": "Bad Queue!,batches"}, "FLEET_QUEUES"),
        ({"FLEET_QUEUES": "batches,x" + "y" * 64}, "FLEET_QUEUES"),
        ({"FLEET_EXTERNAL_URL": "not a url"}, "FLEET_EXTERNAL_URL"),
        ({"FLEET_API_TOKEN": "a"}, "FLEET_API_TOKEN"),
        ({"FLEET_API_TOKEN": "x" * 19}, "FLEET_API_TOKEN"),
    ],
)
def test_bad_setting_is_one_line_and_writes_nothing(tmp_path: Path, env: dict[str, str], name: str) -> None:
    r = fleet_server(env, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written before the configuration is known to be good"


def test_port_in_use_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = fleet_server({"FLEET_HTTP_ADDR": f"127.0.0.1:{port}"}, tmp_path)
    assert r.returncode == 2 and "FLEET_HTTP_ADDR" in r.stderr and "cannot listen" in r.stderr, r.stderr
    assert not (tmp_path / "fleet.db").exists()


def test_flag_error_names_the_flag(tmp_path: Path) -> None:
    r = fleet_server({}, tmp_path, "--http-addr", "no such host:3080")
    assert r.returncode == 2 and "--http-addr" in r.stderr and "FLEET_HTTP_ADDR" not in r.stderr, r.stderr
    assert not (tmp_path / "fleet.db").exists()


def test_misspelt_variables_are_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    # The bad log level makes the server exit at once; the warnings come first, one line each, and do not refuse.
    r = fleet_server({"FLEET_MAX_RETRYS": "5", "FLEET_STALLED_JOB_SECOND": "9", "FLEET_LOG_LEVEL": "loud"}, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert any("FLEET_MAX_RETRYS" in line and "FLEET_MAX_RETRIES" in line for line in lines), r.stderr
    assert any("FLEET_STALLED_JOB_SECOND " in line and "FLEET_STALLED_JOB_SECONDS" in line for line in lines)
    assert sum("warning:" in line for line in lines) == 2 and lines[-1].startswith("error: FLEET_LOG_LEVEL")


def test_ready_is_logged_once_the_port_accepts(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env |= {"FLEET_EXECUTORS_ACCESS_TOKEN": TOKEN, "FLEET_API_TOKEN": TOKEN, "FLEET_HTTP_ADDR": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "server", "--log-level", "info"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # waits on the event (the log line), however slow the machine
            if " ready on " in line:
                break
        else:
            pytest.fail(f"the server exited ({proc.wait()}) without logging ready")
        # Said only once the port is bound and served: the very next request is answered.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60).status_code == 200
    finally:
        proc.terminate()
        proc.wait(60)
