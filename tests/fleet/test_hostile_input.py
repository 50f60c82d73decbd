"""Hostile input over HTTP: a 4xx naming the field, never a 5xx (docs/control-plane.md, "Limits")."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet.app import MAX_BODY_BYTES
from tests.support.fleet_server import FleetServer, start_fleet_server

BIG = str(2**63)
STEP = {"image": "alpine:3", "commands": ["true"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    s = start_fleet_server(tmp_path_factory.mktemp("hostile"))
    yield s
    s.stop()


def raw(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


def job(server: FleetServer) -> dict:
    with server.api() as api:
        api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).raise_for_status()
    with server.executor() as ex:
        r = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "hostile-1"})
        assert r.status_code == 200
        return r.json()


def assert_names(r: httpx.Response, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert field in body["error"], body
    if status == 422:
        assert isinstance(body["detail"], list) and all("loc" in d and "msg" in d for d in body["detail"])


EXECUTOR_ROUTES = [
    "/.executors/queue/batches/dequeue",
    "/.executors/queue/batches/heartbeat",
    "/.executors/queue/batches/addExecutionLogEntry",
    "/.executors/queue/batches/updateExecutionLogEntry",
    "/.executors/queue/batches/markComplete",
    "/.executors/queue/batches/markErrored",
    "/.executors/queue/batches/markFailed",
    "/.executors/queue/dequeue",
    "/.executors/queue/heartbeat",
]


@pytest.mark.parametrize("body", [b'{"executorName": "\xff\xfe"}', b"\xff" * 10, b'{"executorName": NaN}'])
def test_undecodable_bodies_are_422_everywhere(server: FleetServer, body: bytes) -> None:
    with server.executor() as ex:
        for path in EXECUTOR_ROUTES:
            r = raw(ex, path, body)
            assert r.status_code == 422, (path, r.status_code, r.text)
            assert r.json()["error"]
    with server.api() as api:
        for path in ("/api/v1/queues", "/api/v1/jobs", "/api/v1/repositories"):
            r = raw(api, path, body)
            assert r.status_code == 422, (path, r.status_code, r.text)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(server: FleetServer, value: str) -> None:
    with server.api() as api:
        r = raw(api, "/api/v1/queues", f'{{"name": "q1", "retryDelaySeconds": {value}}}'.encode())
    assert_names(r, 422, "retryDelaySeconds")


def test_lone_surrogates_are_refused(server: FleetServer) -> None:
    body = b'{"queue": "batches", "dockerSteps": [{"image": "\\ud800", "commands": ["true"]}]}'
    with server.api() as api:
        assert_names(raw(api, "/api/v1/jobs", body), 422, "image")
        r = raw(api, "/api/v1/jobs", b'{"queue": "batches", "redactedValues": {"\\udc00": "x"}, "cliSteps": []}')
        assert r.status_code == 422, r.text
    with server.executor() as ex:
        r = raw(ex, "/.executors/queue/batches/heartbeat", b'{"executorName": "\\ud800"}')
        assert r.status_code == 422, r.text


def test_integers_past_64_bits(server: FleetServer) -> None:
    with server.api() as api:
        for path in (f"/api/v1/jobs/{BIG}", f"/api/v1/jobs/{BIG}/logs"):
            assert_names(api.get(path), 422, "job_id")
        assert_names(api.post(f"/api/v1/jobs/{BIG}/cancel"), 422, "job_id")
        r = raw(api, "/api/v1/queues", f'{{"name": "q2", "maxRetries": {BIG}}}'.encode())
        assert_names(r, 422, "maxRetries")
    j = job(server)
    auth = {"Authorization": f"Bearer {j['token']}"}
    entry = {"executorName": "hostile-1", "jobId": j["id"], "key": "k", "startTime": "2024-01-01T00:00:00Z"}
    with server.executor() as ex:
        for field, body in [
            ("jobId", {**entry, "jobId": 2**63}),
            ("exitCode", {**entry, "exitCode": 2**63}),
            ("durationMs", {**entry, "durationMs": 2**64}),
        ]:
            r = ex.post("/.executors/queue/batches/addExecutionLogEntry", json=body, headers=auth)
            assert_names(r, 422, field)
        r = ex.post("/.executors/queue/batches/updateExecutionLogEntry", json={**entry, "entryId": 2**63})
        assert_names(r, 422, "entryId")
        r = ex.post("/.executors/queue/batches/markComplete", json={"executorName": "hostile-1", "jobId": 2**63})
        assert_names(r, 422, "jobId")


def test_heartbeat_job_ids_and_times(server: FleetServer) -> None:
    with server.executor() as ex:
        for ids in (["²"], ["١"], [BIG], ["12\n"]):
            r = ex.post("/.executors/queue/batches/heartbeat", json={"executorName": "h", "jobIds": ids})
            assert_names(r, 422, "jobIds")
        r = ex.post("/.executors/queue/batches/dequeue", params={"wait": "nan"}, json={"executorName": "h"})
        assert_names(r, 422, "wait")
    j = job(server)
    entry = {"executorName": "hostile-1", "jobId": j["id"], "key": "k", "startTime": "9999-12-31T23:59:59-23:59"}
    with server.executor() as ex:
        r = ex.post("/.executors/queue/batches/addExecutionLogEntry", json=entry)
        assert_names(r, 422, "startTime")


def test_queue_names_are_matched_whole(server: FleetServer) -> None:
    with server.api() as api:
        assert_names(api.post("/api/v1/queues", json={"name": "batches\n"}), 422, "name")
        assert_names(api.post("/api/v1/jobs", json={"queue": "batches\n", "dockerSteps": [STEP]}), 422, "queue")
        assert_names(api.post("/api/v1/queues", json={"name": ""}), 422, "name")
    with server.executor() as ex:
        r = ex.post("/.executors/queue/batches%0A/dequeue", json={"executorName": "h"})
        assert 400 <= r.status_code < 500, r.text


def test_body_size_limit(server: FleetServer) -> None:
    content = base64.b64encode(b"x" * (MAX_BODY_BYTES // 4 * 3 + 16)).decode()
    big = json.dumps({"queue": "batches", "files": {"a": {"content": content}}, "dockerSteps": [STEP]}).encode()
    with server.api() as api:
        assert api.post("/api/v1/jobs", content=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 1 << 20):
                yield big[i : i + (1 << 20)]

        assert api.post("/api/v1/jobs", content=chunks()).status_code == 413
    with server.executor() as ex:
        assert raw(ex, "/.executors/queue/batches/heartbeat", big).status_code == 413


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a\0b", "NUL"),
        ("d/" + "n" * 256, "longer than 255 bytes"),
        ("/".join(["d" * 200] * 21), "longer than 4096 bytes"),
        (".", "names the workspace directory itself"),
        ("./", "names the workspace directory itself"),
        ("/etc/cron.d/job", "is absolute"),
        ("../outside", "'..' leads outside the workspace"),
        ("a/../../outside", "'..' leads outside the workspace"),
    ],
)
def test_file_names_the_agent_cannot_write_are_refused_at_submit(server: FleetServer, name: str, why: str) -> None:
    files = {name: {"content": ""}}
    with server.api() as api:
        r = api.post("/api/v1/jobs", json={"queue": "batches", "files": files, "dockerSteps": [STEP]})
    assert_names(r, 422, why)


def test_dot_dot_that_stays_inside_the_workspace_is_accepted(server: FleetServer) -> None:
    files = {"a/../b.txt": {"content": ""}}
    with server.api() as api:
        r = api.post("/api/v1/jobs", json={"queue": "batches", "files": files, "dockerSteps": [STEP]})
    assert r.status_code == 201, r.text


def test_a_file_and_a_file_under_it_are_refused(server: FleetServer) -> None:
    files = {"same": {"content": ""}, "same/child": {"content": ""}}
    with server.api() as api:
        r = api.post("/api/v1/jobs", json={"queue": "batches", "files": files, "dockerSteps": [STEP]})
    assert_names(r, 422, "'same' is also a file")


def test_repository_errors_have_the_documented_shape(server: FleetServer, tmp_path: Path) -> None:
    with server.api() as api:
        r = api.post("/api/v1/repositories", json={"name": "acme/app", "url": str(tmp_path / "missing")})
        assert_names(r, 422, "url")
        assert r.json()["detail"][0]["loc"] == ["body", "url"]
        assert_names(api.post("/api/v1/repositories", json={"name": "", "url": "x"}), 422, "name")
        schema = api.get("/openapi.json").json()["components"]["schemas"]
        assert schema["RepositoryCreate"]["properties"]["name"]["minLength"] == 1
        assert schema["JobSubmission"]["properties"]["queue"]["pattern"].startswith("^")


def test_login_compares_in_constant_time_and_survives_odd_tokens(server: FleetServer) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        assert c.post("/login", data={"token": "wrong"}).status_code == 401
        assert c.post("/login", data={"token": "é" * 40}).status_code == 401
        assert c.post("/login", data={"token": server.api_token}).status_code == 303
