"""Jobs, live: retrying a finished job (store, API, CLI), following a job's logs as a server-sent stream."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fleet.schemas import JobSubmission
from fleet.states import JobState
from fleet.store import Store
from fleet.store.errors import Conflict, NotFound
from tests.fleet.test_cli import fleet
from tests.support.fleet_server import FleetServer

STEP = {"image": "busybox", "commands": ["echo hi"]}


def _entry(store: Store, job_id: int, out: str) -> int:
    entry = {"key": "step.0", "command": ["echo"], "startTime": datetime(2026, 1, 1, tzinfo=UTC), "out": out}
    return store.logs.add("batches", job_id, "exec-a", entry)


def test_retry_queues_a_finished_job_as_a_new_attempt_keeping_logs(store: Store) -> None:
    job_id = store.jobs.submit(JobSubmission(queue="batches", dockerSteps=[STEP])).id  # type: ignore[list-item]
    with pytest.raises(Conflict, match="only completed, failed or canceled"):
        store.transitions.retry(job_id)  # still queued
    store.jobs.claim(["batches"], "exec-a")
    _entry(store, job_id, "first attempt\n")
    store.transitions.mark_failed("batches", job_id, "exec-a", "boom")

    row = store.transitions.retry(job_id)
    assert (row.state, row.failure_message, row.finished_at, row.executor_name) == ("queued", None, None, None)
    assert row.attempt == 1  # the next dequeue makes it attempt 2
    with pytest.raises(Conflict):
        store.transitions.retry(job_id)  # a second retry of the same run is refused

    again = store.jobs.claim(["batches"], "exec-b")
    assert again is not None and again.id == job_id
    assert store.jobs.get(job_id).attempt == 2
    store.transitions.mark_complete("batches", job_id, "exec-b")
    entries = store.logs.for_job(job_id)
    assert [(e.attempt, e.out) for e in entries] == [(1, "first attempt\n")]
    assert store.jobs.get(job_id).state == JobState.COMPLETED
    with pytest.raises(NotFound):
        store.transitions.retry(10_000)


def _start_job(fleet_server: FleetServer, name: str = "exec-live") -> int:
    with fleet_server.api() as api, fleet_server.executor() as ex:
        api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).raise_for_status()
        return int(ex.post("/.executors/queue/batches/dequeue", json={"executorName": name}).json()["id"])


def _log(ex: httpx.Client, job_id: int, out: str, entry_id: int | None = None, exit_code: int | None = None) -> int:
    body = {
        "executorName": "exec-live",
        "jobId": job_id,
        "key": "step.docker.0",
        "command": ["echo", "hi"],
        "startTime": "2026-01-01T00:00:00Z",
        "out": out,
        "exitCode": exit_code,
        "durationMs": None if exit_code is None else 1500,
    }
    if entry_id is None:
        return int(ex.post("/.executors/queue/batches/addExecutionLogEntry", json=body).json())
    ex.post("/.executors/queue/batches/updateExecutionLogEntry", json={**body, "entryId": entry_id})
    return entry_id


def _read_rest(proc: subprocess.Popen[str]) -> str:
    """The rest of the output, through the same buffered reader as _read_until: communicate(timeout=...) reads the
    pipe's descriptor directly and loses what that reader has buffered already."""
    assert proc.stdout is not None
    rest = proc.stdout.read()  # returns at EOF: the command exits after the job's end (pytest-timeout guards)
    proc.wait(timeout=60)
    return rest


def _read_until(proc: subprocess.Popen[str], text: str) -> list[str]:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never printed; got {seen}")


def test_logs_follow_streams_output_and_ends_with_the_failure(fleet_server: FleetServer) -> None:
    job_id = _start_job(fleet_server)
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "jobs", "logs", str(job_id), "--follow"],
        env={**fleet_server.env, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with fleet_server.executor() as ex:
            seen = _read_until(proc, "is processing")  # the stream is open before any output exists
            entry = _log(ex, job_id, "stdout: line one\n")
            seen += _read_until(proc, "line one")  # printed while the job still runs
            _log(ex, job_id, "stdout: line one\nstdout: line two\n", entry, exit_code=3)
            seen += _read_until(proc, "line two")
            ex.post(
                "/.executors/queue/batches/markFailed",
                json={"executorName": "exec-live", "jobId": job_id, "errorMessage": "step.docker.0 exited 3"},
            )
        rest = _read_rest(proc)
    finally:
        proc.kill()
    out = "".join(seen) + rest
    assert out.count("line one") == 1  # only the new output of a grown entry is printed
    assert "exit 3, took 1.5s" in out
    assert out.rstrip().splitlines()[-1] == f"job {job_id}: failed: step.docker.0 exited 3"
    assert proc.returncode == 1

    # The plain GET still answers JSON.
    with fleet_server.api() as api:
        body = api.get(f"/api/v1/jobs/{job_id}/logs").json()
        assert body["entries"][0]["out"] == "stdout: line one\nstdout: line two\n"
        raw = api.get(f"/api/v1/jobs/{job_id}/logs", headers={"Accept": "text/event-stream"}).text
    events = [line.split(": ", 1)[1] for line in raw.splitlines() if line.startswith("event: ")]
    assert events == ["job", "entry", "end"]  # a finished job: everything at once, then the end


def test_submit_wait_prints_the_failure_and_retry_requeues(fleet_server: FleetServer, tmp_path: Path) -> None:
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"queue": "codeintel", "cliSteps": [{"commands": ["false"]}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "jobs", "submit", str(spec), "--wait"],
        env={**fleet_server.env, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _read_until(proc, "is queued")
        with fleet_server.executor() as ex:
            job = ex.post("/.executors/queue/codeintel/dequeue", json={"executorName": "exec-w"}).json()
            ex.post(
                "/.executors/queue/codeintel/markFailed",
                json={"executorName": "exec-w", "jobId": job["id"], "errorMessage": "no space left on device"},
            )
        out = _read_rest(proc)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert f"job {job['id']}: failed: no space left on device" in out

    r = fleet("jobs", "retry", str(job["id"]), env=env)
    assert r.returncode == 0, r.stderr
    assert "queued again in codeintel (attempt 2 when dequeued)" in r.stdout
    r = fleet("jobs", "retry", str(job["id"]), env=env)
    assert r.returncode == 1 and "only completed, failed or canceled jobs can be retried" in r.stderr
    r = fleet("jobs", "show", str(job["id"]), "--json", env=env)
    assert json.loads(r.stdout)["state"] == "queued" and json.loads(r.stdout)["failureMessage"] is None
    with fleet_server.api() as api:
        assert api.post("/api/v1/jobs/99999/retry").status_code == 404


def test_list_with_an_unknown_queue_says_so(fleet_server: FleetServer) -> None:
    env = {"FLEET_URL": fleet_server.url, "FLEET_API_TOKEN": fleet_server.api_token}
    r = fleet("jobs", "list", "--queue", "bogus", env=env)
    assert r.returncode == 1
    assert "queue 'bogus' does not exist (known: batches, codeintel)" in r.stderr
    r = fleet("jobs", "list", "--queue", "batches", env=env)
    assert r.returncode == 0
