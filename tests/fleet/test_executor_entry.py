"""The executor protocol's entry ahead of the middleware stack (fleet/api/executor_entry.py): protocol calls skip
the router, and answer exactly as the full stack does, errors included; what it does not take goes through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fleet.api import executor_entry, executor_routes
from fleet.api.observability import build_registry
from fleet.app import create_app
from fleet.settings import ServerSettings

SECRET = "entry-test-executor-secret"
API = "entry-test-api-token"
STEP = {"image": "busybox", "commands": ["true"]}


class RouterSpy:
    """Counts the requests that reach the application's router, i.e. that went through the full stack."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.router(scope, receive, send)


@asynccontextmanager
async def running(tmp_path: Path, raise_errors: bool = True) -> AsyncIterator[tuple[httpx.AsyncClient, RouterSpy]]:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path}/fleet.db", executors_access_token=SECRET, api_token=API
    )  # type: ignore[call-arg]
    app = create_app(settings)
    spy = RouterSpy(app.router)
    app.router = spy  # type: ignore[assignment]  # the middleware stack is built on the first request
    async with app.router.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_errors)
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet", timeout=30) as client:
            yield client, spy


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """The same body without a Content-Length (sent chunked): the entry leaves it to the full stack."""
    yield body


EXECUTOR = {"Authorization": f"token-executor {SECRET}"}
CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("/.executors/queue/batches/dequeue", {}, b'{"executorName": "e"}'),  # no credentials
    ("/.executors/queue/batches/dequeue", {"Authorization": "token-executor wrong"}, b'{"executorName": "e"}'),
    ("/.executors/queue/batches/dequeue", EXECUTOR, b'{"executorName": '),  # malformed JSON
    ("/.executors/queue/batches/dequeue", EXECUTOR, b'{"executorName": "\xff"}'),  # not UTF-8
    ("/.executors/queue/nosuchqueue/dequeue", EXECUTOR, b'{"executorName": "e"}'),
    ("/.executors/queue/batches/dequeue", EXECUTOR, b'{"executorName": "e"}'),  # nothing queued: 204
    ("/.executors/queue/dequeue", EXECUTOR, b'{"executorName": "e", "queues": []}'),
    ("/.executors/queue/batches/markComplete", {"Authorization": "Bearer not-a-token"}, b'{"jobId": 1}'),
    ("/.executors/queue/batches/markComplete", EXECUTOR, b'{"executorName": "e", "jobId": 99}'),
    ("/.executors/queue/batches/addExecutionLogEntry", EXECUTOR, b'{"executorName": "e", "jobId": "x"}'),
    ("/.executors/queue/batches/heartbeat", EXECUTOR, b'{"executorName": "e", "jobIds": [1, 2]}'),
]


@pytest.mark.parametrize(("path", "headers", "body"), CASES)
def test_answers_as_the_full_stack_does(tmp_path: Path, path: str, headers: dict[str, str], body: bytes) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (client, spy):
            fast = await client.post(path, content=body, headers=headers)
            assert spy.paths == [], "a protocol call with a Content-Length went through the router"
            full = await client.post(path, content=chunked(body), headers=headers)
            assert spy.paths == [path]
            assert (fast.status_code, fast.content) == (full.status_code, full.content)
            assert fast.headers.get("www-authenticate") == full.headers.get("www-authenticate")
            assert fast.headers.get("content-type") == full.headers.get("content-type")

    asyncio.run(scenario())


def test_a_job_goes_through_the_entry_and_is_counted_by_route(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (client, spy):
            submitted = await client.post(
                "/api/v1/jobs",
                json={"queue": "batches", "dockerSteps": [STEP]},
                headers={"Authorization": f"Bearer {API}"},
            )
            assert submitted.status_code in (200, 201), submitted.text
            r = await client.post("/.executors/queue/batches/dequeue", json={"executorName": "e"}, headers=EXECUTOR)
            assert r.status_code == 200, r.text
            job = r.json()
            token = {"Authorization": f"Bearer {job['token']}", "X-Sourcegraph-Job-ID": str(job["id"])}
            done = await client.post(
                "/.executors/queue/batches/markComplete",
                json={"executorName": "e", "jobId": job["id"]},
                headers=token,
            )
            assert done.status_code == 204, done.text
            assert spy.paths == []  # the submission too: it enters by its whole path
            metrics = (await client.get("/metrics")).text
        route = 'method="POST",route="/.executors/queue/{queue}'
        for line in (
            'fleet_http_requests_total{method="POST",route="/api/v1/jobs",status="201"} 1.0',
            f'fleet_http_requests_total{{{route}/dequeue",status="200"}} 1.0',
            f'fleet_http_requests_total{{{route}/markComplete",status="204"}} 1.0',
            f'fleet_http_request_duration_seconds_count{{{route}/dequeue"}} 1.0',
        ):
            assert line in metrics, line

    asyncio.run(scenario())


API_JSON = {"Authorization": f"Bearer {API}", "Content-Type": "application/json"}
STEP_JSON = b'{"image": "busybox", "commands": ["true"]}'
SUBMISSIONS: list[tuple[dict[str, str], bytes, bool]] = [
    # (headers, body, whether the entry answers it itself rather than handing it to the full stack)
    (API_JSON, b'{"queue": "batches", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}', True),
    (API_JSON, b'{"queue": "nosuchqueue", "dockerSteps": [{"image": "busybox", "commands": ["true"]}]}', True),
    (
        API_JSON,
        b'{"queue": "batches", "repositoryName": "nope", "commit": "'
        + 40 * b"a"
        + b'", "dockerSteps": ['
        + STEP_JSON
        + b"]}",
        True,
    ),
    ({"Content-Type": "application/json"}, b'{"queue": "batches"}', False),  # no token
    ({**API_JSON, "Authorization": "Bearer wrong"}, b'{"queue": "batches"}', False),
    ({**API_JSON, "Authorization": "Bearer wrong"}, b'{"queue": ', False),  # FastAPI reads the body first
    (API_JSON, b'{"queue": ', False),  # malformed JSON
    (API_JSON, b'{"queue": "\xff"}', False),  # not UTF-8
    (API_JSON, b'{"queue": "batches", "dockerSteps": "x"}', False),
    (API_JSON, b'{"queue": "batches", "dockerSteps": [{"image": "b", "commands": []}], "extra": 1}', False),
    (API_JSON, b"[]", False),
    ({"Authorization": f"Bearer {API}"}, b'{"queue": "batches", "dockerSteps": []}', False),  # no content type
    ({**API_JSON, "Content-Type": "text/plain"}, b'{"queue": "batches", "dockerSteps": []}', False),
]
VARYING = ("id", "createdAt", "queuedAt")  # two submissions of one body differ only in these


@pytest.mark.parametrize(("headers", "body", "taken"), SUBMISSIONS)
def test_a_submission_is_answered_as_the_full_stack_does(
    tmp_path: Path, headers: dict[str, str], body: bytes, taken: bool
) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (client, spy):
            fast = await client.post("/api/v1/jobs", content=body, headers=headers)
            assert spy.paths == ([] if taken else ["/api/v1/jobs"])
            full = await client.post("/api/v1/jobs", content=chunked(body), headers=headers)
            assert spy.paths[-1:] == ["/api/v1/jobs"]
            assert fast.status_code == full.status_code, (fast.text, full.text)
            if fast.status_code == 201:
                mine, theirs = fast.json(), full.json()
                assert mine["id"] != theirs["id"]  # two jobs
                assert {k: v for k, v in mine.items() if k not in VARYING} == {
                    k: v for k, v in theirs.items() if k not in VARYING
                }
            else:
                assert fast.content == full.content
            for name in ("www-authenticate", "content-type"):
                assert fast.headers.get(name) == full.headers.get(name), name
            metrics = (await client.get("/metrics")).text
            count = f'fleet_http_requests_total{{method="POST",route="/api/v1/jobs",status="{fast.status_code}"}} 2.0'
            assert count in metrics  # each counted once, wherever it was answered

    asyncio.run(scenario())


def test_what_the_entry_does_not_take_reaches_the_full_stack(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (client, spy):
            wrong_method = await client.get("/.executors/queue/batches/dequeue", headers=EXECUTOR)
            assert wrong_method.status_code == 405
            unknown = await client.post("/.executors/queue/batches/noSuchAction", content=b"{}", headers=EXECUTOR)
            assert unknown.status_code == 404
            too_big = await client.post(
                "/.executors/queue/batches/heartbeat",
                content=b" " * 10,
                headers={**EXECUTOR, "Content-Length": str(64 * 1024 * 1024)},
            )
            assert too_big.status_code == 413
            assert spy.paths == ["/.executors/queue/batches/dequeue", "/.executors/queue/batches/noSuchAction"]

    asyncio.run(scenario())


def test_an_unhandled_error_answers_the_same_plain_500_and_is_counted(tmp_path: Path) -> None:
    """No exception handler takes it: the entry answers as Starlette's server-error middleware does for the full
    stack, and the error still goes on to the server (which logs it)."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("the store broke in a way nothing handles")

    async def scenario() -> None:
        async with running(tmp_path, raise_errors=False) as (client, spy):
            store = client._transport.app.state.store  # type: ignore[attr-defined]  # the ASGITransport's app
            store.jobs.claim = broken
            body = b'{"executorName": "e"}'
            path = "/.executors/queue/batches/dequeue"
            fast = await client.post(path, content=body, headers=EXECUTOR)
            full = await client.post(path, content=chunked(body), headers=EXECUTOR)
            assert spy.paths == [path]  # only the chunked one took the full stack
            assert (fast.status_code, fast.text) == (full.status_code, full.text) == (500, "Internal Server Error")
            metrics = (await client.get("/metrics")).text
        counted = 'fleet_http_requests_total{method="POST",route="/.executors/queue/{queue}/dequeue",status="500"}'
        assert f"{counted} 2.0" in metrics

    asyncio.run(scenario())


def test_route_matches_are_remembered_per_method_and_path_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = executor_entry.ExecutorEntry(
        [r for r in executor_routes.routes if isinstance(r, Route)], build_registry()[1], 1024
    )

    def scope(path: str, method: str = "POST") -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "headers": [(b"content-length", b"2")]}

    first, second = scope("/.executors/queue/batches/dequeue"), scope("/.executors/queue/batches/dequeue")
    route = entry.route(first)
    assert route is not None and route is entry.route(second)
    assert first["path_params"] == second["path_params"] == {"queue": "batches"}
    first["path_params"]["queue"] = "changed"  # each request has its own
    assert second["path_params"] == {"queue": "batches"}
    other = scope("/.executors/queue/other/dequeue")
    assert entry.route(other) is route and other["path_params"] == {"queue": "other"}  # its own match
    assert entry.route(scope("/.executors/queue/batches/dequeue", "GET")) is None  # a method it does not take
    assert entry.route(scope("/.executors/queue/batches/nothing")) is None

    monkeypatch.setattr(executor_entry, "MAX_MATCHED", 3)
    for i in range(10):  # paths a caller makes up do not grow it past its bound
        entry.route(scope(f"/.executors/queue/q{i}/dequeue"))
        assert len(entry._matched) <= 3
    again = scope("/.executors/queue/q9/dequeue")
    assert entry.route(again) is route and again["path_params"] == {"queue": "q9"}
