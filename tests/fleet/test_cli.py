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


COMMANDS = [
    [],
    ["jobs"],
    ["jobs", "submit"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "logs"],
    ["jobs", "cancel"],
    ["jobs", "retry"],
    ["queues"],
    ["queues", "add"],
    ["executors"],
    ["repos"],
    ["repos", "add"],
    ["repos", "list"],
    ["server"],
    ["status"],
    ["simulate"],
    ["infra"],
    *(["infra", c] for c in ("init", "plan", "apply", "destroy", "output", "status")),
]
LISTINGS = [["jobs", "list"], ["queues"], ["executors"], ["repos", "list"], ["status"], ["infra", "status"]]


def test_every_help_has_examples_and_every_listing_describes_json() -> None:
    for command in COMMANDS:
        r = fleet(*command, "--help")
        assert r.returncode == 0, (command, r.stderr)
        assert "Examples:" in r.stdout and "$ fleet" in r.stdout, command
    for command in LISTINGS:
        help_text = " ".join(fleet(*command, "--help").stdout.split())
        assert "--json" in help_text and "JSON" in help_text.split("--json", 1)[1][:200], command


def test_version_and_completion() -> None:
    r = fleet("--version")
    assert r.returncode == 0 and r.stdout.strip() == "fleet 0.1.0"
    r = fleet("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert r.returncode == 0 and "COMPLETE=complete_bash" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(
        [str(Path(sys.executable).parent / "metrics-publisher"), "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.strip() == "metrics-publisher 0.1.0"


def test_tables_stay_whole_in_a_pipe_and_missing_values_are_dashes(fleet_server: FleetServer) -> None:
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token, "COLUMNS": "40"}
    message = "a failure message long enough to overflow any eighty column terminal line, kept whole"
    with fleet_server.api() as api, fleet_server.executor() as ex:
        api.post("/api/v1/queues", json={"name": "processing-heavy-batches-queue"})
        api.post("/api/v1/jobs", json={"queue": "processing-heavy-batches-queue", "cliSteps": [{"commands": ["x"]}]})
        job = ex.post(
            "/.executors/queue/processing-heavy-batches-queue/dequeue", json={"executorName": "exec-pipe"}
        ).json()
        ex.post(
            "/.executors/queue/processing-heavy-batches-queue/heartbeat",
            json={"executorName": "exec-pipe", "jobIds": [job["id"]]},
        )
        ex.post(
            "/.executors/queue/processing-heavy-batches-queue/markFailed",
            json={"executorName": "exec-pipe", "jobId": job["id"], "errorMessage": message},
        )
    for command in (["jobs", "list"], ["queues"], ["executors"], ["jobs", "show", str(job["id"])]):
        r = fleet(*command, env=env)  # stdout is a pipe here
        assert r.returncode == 0, r.stderr
        assert "…" not in r.stdout and "None" not in r.stdout, r.stdout
    listing = fleet("jobs", "list", env=env).stdout
    assert message in listing and "processing-heavy-batches-queue" in listing
    assert "—" in listing  # no repository, shown as a dash
    assert "healthy" in fleet("executors", env=env).stdout  # health as a word
    queues = fleet("queues", env=env).stdout
    assert queues.splitlines()[1].split()[-1] == "—"  # an empty queue has no oldest job
