"""The executor protocol through real HTTP: `fleet server` under uvicorn on loopback, httpx as the executor."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fleet_server import FleetServer, start_fleet_server

STEP = {"image": "busybox", "commands": ["true"]}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[FleetServer]:
    s = start_fleet_server(tmp_path / "srv", database_url)
    yield s
    s.stop()


@pytest.fixture
def fast_reset_server(database_url: str, tmp_path: Path) -> Iterator[FleetServer]:
    s = start_fleet_server(tmp_path / "srv", database_url, stalled_job_seconds="1", resetter_interval_seconds="0.2")
    yield s
    s.stop()


def submit(server: FleetServer, queue: str = "batches", **spec: Any) -> int:
    with server.api() as api:
        r = api.post("/api/v1/jobs", json={"queue": queue, "dockerSteps": [STEP], **spec})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def dequeue(ex: httpx.Client, name: str = "exec-a", queue: str = "batches", wait: float = 0) -> dict[str, Any] | None:
    r = ex.post(f"/.executors/queue/{queue}/dequeue", params={"wait": wait}, json={"executorName": name})
    if r.status_code == 204:
        return None
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def job_headers(job: dict[str, Any], name: str = "exec-a") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {job['token']}",
        "X-Sourcegraph-Job-ID": str(job["id"]),
        "X-Sourcegraph-Executor-Name": name,
    }


def test_cycle_logs_heartbeat_complete(server: FleetServer) -> None:
    job_id = submit(server)
    with server.executor() as ex, httpx.Client(base_url=server.url) as anon:
        job = dequeue(ex)
        assert job and job["id"] == job_id
        h = job_headers(job)
        entry = {
            "executorName": "exec-a",
            "jobId": job_id,
            "key": "step.docker.0",
            "command": ["true"],
            "startTime": "2026-01-01T00:00:00Z",
        }
        r = anon.post("/.executors/queue/batches/addExecutionLogEntry", headers=h, json=entry)
        assert r.status_code == 200, r.text
        entry_id = r.json()
        r = anon.post(
            "/.executors/queue/batches/updateExecutionLogEntry",
            headers=h,
            json={**entry, "entryId": entry_id, "exitCode": 0, "out": "stdout: hi\n", "durationMs": 5},
        )
        assert r.status_code == 204, r.text
        hb = ex.post(
            "/.executors/queue/batches/heartbeat",
            json={
                "executorName": "exec-a",
                "jobIds": [str(job_id), "999"],
                "os": "linux",
                "architecture": "amd64",
                "gitVersion": "2.39.5",
                "executorVersion": "0.1.0",
            },
        )
        assert hb.json() == {"knownIds": [str(job_id)], "cancelIds": []}
        r = anon.post(
            "/.executors/queue/batches/markComplete", headers=h, json={"executorName": "exec-a", "jobId": job_id}
        )
        assert r.status_code == 204, r.text
        # The token is revoked once the job ends.
        r = anon.post(
            "/.executors/queue/batches/markComplete", headers=h, json={"executorName": "exec-a", "jobId": job_id}
        )
        assert r.status_code == 401
    with server.api() as api:
        assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "completed"
        logs = api.get(f"/api/v1/jobs/{job_id}/logs").json()["entries"]
        assert [(e["key"], e["exitCode"], e["out"]) for e in logs] == [("step.docker.0", 0, "stdout: hi\n")]
        executors = api.get("/api/v1/executors").json()["executors"]
        assert executors[0]["name"] == "exec-a" and executors[0]["healthy"] is True
        assert executors[0]["gitVersion"] == "2.39.5"


def test_auth_errors(server: FleetServer) -> None:
    a = submit(server)
    b = submit(server)
    submit(server, "codeintel")
    with server.executor() as ex, httpx.Client(base_url=server.url) as anon:
        assert anon.post("/.executors/queue/batches/dequeue", json={"executorName": "x"}).status_code == 401
        bad = {"Authorization": "token-executor " + "y" * 32}
        assert (
            anon.post("/.executors/queue/batches/dequeue", headers=bad, json={"executorName": "x"}).status_code == 401
        )
        assert anon.get("/.executors/test/auth", headers=bad).status_code == 401
        assert ex.get("/.executors/test/auth").text == "ok"
        job_a = dequeue(ex)
        job_b = dequeue(ex)
        assert job_a and job_b and job_a["id"] == a and job_b["id"] == b
        # A's token used for B: 403, and B stays processing.
        r = anon.post(
            "/.executors/queue/batches/markComplete",
            headers={"Authorization": f"Bearer {job_a['token']}"},
            json={"executorName": "exec-a", "jobId": b},
        )
        assert r.status_code == 403
        r = anon.post(
            "/.executors/queue/batches/markComplete",
            headers=job_headers(job_b) | {"X-Sourcegraph-Job-ID": str(a)},
            json={"executorName": "exec-a", "jobId": a},
        )
        assert r.status_code == 403
        # A's token on another queue: 403.
        r = anon.post(
            "/.executors/queue/codeintel/markComplete",
            headers=job_headers(job_a),
            json={"executorName": "exec-a", "jobId": a},
        )
        assert r.status_code == 403
        # Garbage tokens and missing schemes: 401.
        r = anon.post(
            "/.executors/queue/batches/markComplete",
            headers={"Authorization": "Bearer nope"},
            json={"executorName": "exec-a", "jobId": a},
        )
        assert r.status_code == 401
        r = anon.post("/.executors/queue/batches/markComplete", json={"executorName": "exec-a", "jobId": a})
        assert r.status_code == 401
        # Another executor with the shared secret: 404, nothing changes.
        r = ex.post("/.executors/queue/batches/markComplete", json={"executorName": "exec-z", "jobId": a})
        assert r.status_code == 404
    with server.api() as api:
        assert {api.get(f"/api/v1/jobs/{i}").json()["state"] for i in (a, b)} == {"processing"}
        assert httpx.get(f"{server.url}/api/v1/jobs").status_code == 401


def test_bad_input(server: FleetServer) -> None:
    with server.executor() as ex, server.api() as api:
        r = ex.post(
            "/.executors/queue/batches/dequeue", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "json" in r.json()["error"].lower()
        r = ex.post("/.executors/queue/batches/heartbeat", json={"executorName": "x", "jobIds": ["abc"]})
        assert r.status_code == 422 and "jobIds" in r.json()["error"]
        r = ex.post("/.executors/queue/batches/markErrored", json={"executorName": "x", "jobId": "seven"})
        assert r.status_code == 422 and "jobId" in r.json()["error"]
        r = ex.post("/.executors/queue/nope/dequeue", json={"executorName": "x"})
        assert r.status_code == 404 and "nope" in r.json()["error"]
        r = api.post("/api/v1/jobs", json={"queue": "nope", "dockerSteps": [STEP]})
        assert r.status_code == 404 and "fleet queues add nope" in r.json()["error"]
        r = api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [{"image": "x"}]})
        assert r.status_code == 422 and "dockerSteps.0.commands" in r.json()["error"]
        r = api.post("/api/v1/jobs", json={"queue": "batches", "dockerStep": [STEP]})
        assert r.status_code == 422 and "dockerStep" in r.json()["error"]
        r = api.post(
            "/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP], "files": {"a": {"content": "!!"}}}
        )
        assert r.status_code == 422 and "base64" in r.json()["error"]
        assert api.get("/api/v1/jobs/424242").status_code == 404
        assert api.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 422


def test_log_update_over_limit_truncated(server: FleetServer) -> None:
    job_id = submit(server)
    with server.executor() as ex:
        dequeue(ex)
        entry = {
            "executorName": "exec-a",
            "jobId": job_id,
            "key": "k",
            "startTime": "2026-01-01T00:00:00Z",
            "out": "a" * (2 * 1024 * 1024),
        }
        assert ex.post("/.executors/queue/batches/addExecutionLogEntry", json=entry).status_code == 200
    with server.api() as api:
        out = api.get(f"/api/v1/jobs/{job_id}/logs").json()["entries"][0]["out"]
    assert len(out) < 1024 * 1024 + 200 and "truncated" in out and "1048576 bytes over" in out


def test_long_poll_returns_job_submitted_during_wait(server: FleetServer) -> None:
    with server.executor() as ex:
        assert dequeue(ex, wait=0) is None  # plain polling: 204 at once
        result: dict[str, Any] = {}

        def poll() -> None:
            result["job"] = dequeue(ex, wait=20)

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.3)  # the poll is now waiting inside the server
        assert "job" not in result
        job_id = submit(server)
        t.join(120)
        assert result["job"] is not None and result["job"]["id"] == job_id


def test_long_poll_times_out_with_204(server: FleetServer) -> None:
    with server.executor() as ex:
        assert dequeue(ex, wait=0.5) is None


def test_cancel_flow(server: FleetServer) -> None:
    queued = submit(server)
    running = submit(server)
    with server.api() as api, server.executor() as ex:
        assert api.post(f"/api/v1/jobs/{queued}/cancel").json()["state"] == "canceled"
        job = dequeue(ex)
        assert job and job["id"] == running
        assert api.post(f"/api/v1/jobs/{running}/cancel").json()["cancelRequested"] is True
        hb = ex.post("/.executors/queue/batches/heartbeat", json={"executorName": "exec-a", "jobIds": [running]})
        assert hb.json()["cancelIds"] == [str(running)]
        r = ex.post(
            "/.executors/queue/batches/markFailed",
            json={"executorName": "exec-a", "jobId": running, "errorMessage": "canceled"},
        )
        assert r.status_code == 204
        assert api.get(f"/api/v1/jobs/{running}").json()["state"] == "canceled"
        assert api.post(f"/api/v1/jobs/{running}/cancel").status_code == 409


def test_stale_attempt_token_refused_after_reset(fast_reset_server: FleetServer) -> None:
    """The resetter (stall time 1 s here) requeues the job; the first attempt's token is then useless."""
    server = fast_reset_server
    job_id = submit(server)
    with server.executor() as ex, httpx.Client(base_url=server.url) as anon:
        first = dequeue(ex)
        assert first
        deadline = time.monotonic() + 120
        second = None
        while second is None and time.monotonic() < deadline:
            second = dequeue(ex, wait=1)
        assert second and second["id"] == job_id and second["token"] != first["token"]
        body = {"executorName": "exec-a", "jobId": job_id}
        assert (
            anon.post("/.executors/queue/batches/markComplete", headers=job_headers(first), json=body).status_code
            == 401
        )
        assert (
            anon.post("/.executors/queue/batches/markComplete", headers=job_headers(second), json=body).status_code
            == 204
        )
    with server.api() as api:
        rec = api.get(f"/api/v1/jobs/{job_id}").json()
        assert rec["state"] == "completed" and rec["numResets"] == 1 and rec["attempt"] == 2


def test_each_job_handed_out_exactly_once(server: FleetServer) -> None:
    """8 concurrent executors drain 1,000 jobs; every job is dequeued by exactly one of them."""
    n = 1000
    with server.api() as api:
        for chunk in range(0, n, 100):
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda _: api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}),
                        range(chunk, chunk + 100),
                    )
                )

    def drain(i: int) -> list[int]:
        got = []
        with server.executor() as ex:
            while (job := dequeue(ex, name=f"exec-{i}")) is not None:
                got.append(job["id"])
        return got

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(drain, range(8)))
    ids = [j for r in results for j in r]
    assert len(ids) == n and len(set(ids)) == n
    assert sum(1 for r in results if r) > 1  # the work really was shared
    with server.api() as api:
        q = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}["batches"]
        assert q["processing"] == n and q["queued"] == 0


def test_healthz_and_metrics(server: FleetServer) -> None:
    submit(server)
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    text = httpx.get(f"{server.url}/metrics").text
    assert 'fleet_queue_size{queue="batches"} 1.0' in text
    assert 'fleet_http_requests_total{method="POST",route="/api/v1/jobs",status="201"} 1.0' in text
    assert "fleet_http_request_duration_seconds_bucket" in text
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "executor-fleet"


def test_server_deletes_jobs_past_retention(tmp_path: Path) -> None:
    # 0.00003 days is about 2.6 s: the resetter loop deletes the canceled job soon after.
    s = start_fleet_server(tmp_path / "srv", job_retention_days="0.00003", resetter_interval_seconds="0.2")
    try:
        job_id = submit(s)
        keep = submit(s)
        with s.api() as api:
            assert api.post(f"/api/v1/jobs/{job_id}/cancel").json()["state"] == "canceled"
            deadline = time.monotonic() + 120
            while api.get(f"/api/v1/jobs/{job_id}").status_code != 404 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404
            assert api.get(f"/api/v1/jobs/{keep}").json()["state"] == "queued"
    finally:
        s.stop()
