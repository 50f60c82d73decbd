"""The `fleet` command line: server start-up checks and the job commands against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fleet_server import FleetServer

GOOD_TOKEN = "x" * 24


def fleet(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_server_refuses_short_executor_token(tmp_path: Path) -> None:
    r = fleet("server", env={"FLEET_EXECUTORS_ACCESS_TOKEN": "short", "FLEET_API_TOKEN": GOOD_TOKEN}, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "FLEET_EXECUTORS_ACCESS_TOKEN" in lines[0] and "at least 20 characters" in lines[0]
    assert not (tmp_path / "fleet.db").exists()


def test_server_refuses_missing_api_token(tmp_path: Path) -> None:
    env = {"FLEET_EXECUTORS_ACCESS_TOKEN": GOOD_TOKEN}
    r = fleet("server", env={**env, "FLEET_API_TOKEN": ""}, cwd=tmp_path)
    assert r.returncode == 2 and "FLEET_API_TOKEN" in r.stderr


def test_server_refuses_unusable_database(tmp_path: Path) -> None:
    env = {"FLEET_EXECUTORS_ACCESS_TOKEN": GOOD_TOKEN, "FLEET_API_TOKEN": GOOD_TOKEN}
    r = fleet("server", "--database-url", "mysql://x/y", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "FLEET_DATABASE_URL" in r.stderr and "unsupported" in r.stderr
    r = fleet("server", "--database-url", f"sqlite:///{tmp_path}/missing/dir/fleet.db", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "unusable" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = fleet("server", "--database-url", "postgresql+psycopg://nobody:secret@127.0.0.1:1/x", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "unusable" in r.stderr and "secret" not in r.stderr
    r = fleet("server", "--http-addr", "nonsense", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "--http-addr" in r.stderr and "FLEET_HTTP_ADDR" not in r.stderr
    r = fleet("server", env={**env, "FLEET_HTTP_ADDR": "nonsense"}, cwd=tmp_path)
    assert r.returncode == 2 and "FLEET_HTTP_ADDR" in r.stderr


def test_jobs_commands(fleet_server: FleetServer, tmp_path: Path) -> None:
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"queue": "batches", "dockerSteps": [{"image": "busybox", "commands": ["ls"]}]}))
    r = fleet("jobs", "submit", str(spec), "--json", env=env)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["id"]
    r = fleet("jobs", "list", env=env)
    assert r.returncode == 0 and "batches" in r.stdout and "queued" in r.stdout
    r = fleet("jobs", "show", str(job_id), "--json", env=env)
    assert json.loads(r.stdout)["state"] == "queued"
    r = fleet("queues", "--json", env=env)
    assert {q["name"]: q["size"] for q in json.loads(r.stdout)} == {"batches": 1, "codeintel": 0}
    r = fleet("queues", env=env)
    assert r.returncode == 0 and "batches" in r.stdout
    r = fleet("jobs", "cancel", str(job_id), env=env)
    assert r.returncode == 0 and "canceled" in r.stdout
    r = fleet("jobs", "logs", str(job_id), env=env)
    assert r.returncode == 0
    r = fleet("queues", "add", "extra", "--max-retries", "1", env=env)
    assert r.returncode == 0 and "extra" in r.stdout
    r = fleet("queues", "add", "extra", env=env)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = fleet("executors", env=env)
    assert r.returncode == 0
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = fleet("repos", "add", "github.com/acme/app", str(repo), env=env)
    assert r.returncode == 0, r.stderr
    r = fleet("repos", "list", env=env)
    assert "github.com/acme/app" in r.stdout


def test_jobs_bad_input(fleet_server: FleetServer, tmp_path: Path) -> None:
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    r = fleet("jobs", "submit", str(bad), env=env)
    assert r.returncode == 1 and "not valid JSON" in r.stderr and "line 1" in r.stderr
    r = fleet("jobs", "submit", str(tmp_path / "missing.json"), env=env)
    assert r.returncode == 1 and "cannot read" in r.stderr
    nostep = tmp_path / "nostep.json"
    nostep.write_text(json.dumps({"queue": "batches"}))
    r = fleet("jobs", "submit", str(nostep), env=env)
    assert r.returncode == 1 and "dockerSteps or cliSteps" in r.stderr
    r = fleet("jobs", "show", "9999", env=env)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = fleet("jobs", "list", env={**env, "FLEET_API_TOKEN": "wrong"})
    assert r.returncode == 1 and "refused FLEET_API_TOKEN" in r.stderr
    r = fleet("jobs", "list", env={**env, "FLEET_URL": "http://127.0.0.1:1"})
    assert r.returncode == 1 and "cannot reach" in r.stderr
    r = fleet("repos", "add", "x", str(tmp_path / "nope"), env=env)
    assert r.returncode == 1 and "no such directory" in r.stderr
    r = fleet("repos", "add", "x", str(tmp_path), env=env)
    assert r.returncode == 1 and "not a git repository" in r.stderr
    r = fleet("jobs", "list", env={"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": ""})
    assert r.returncode == 2 and "FLEET_API_TOKEN is required" in r.stderr
