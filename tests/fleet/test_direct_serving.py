"""fleet/api/http_protocol.py serves the calls the protocol entry takes on the connection itself (direct), and its
answers are the ones ASGI gives (the same application wrapped, so that the protocol leaves every call to ASGI).

Real uvicorn, real loopback sockets, the real application (tests/support/inproc_server.py); raw HTTP where
pipelining, `Connection: close`, HEAD or a client leaving mid-body are the point.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.inproc_server import API, EXECUTOR, SECRET, serving, until

STEP = {"image": "busybox", "commands": ["true"]}
DEQUEUE = "/.executors/queue/batches/dequeue"
TEST_AUTH = "/.executors/test/auth"
MODES = pytest.mark.parametrize("direct", [True, False], ids=["direct", "asgi"])


def _request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: fleet\r\n"
    for name, value in {"content-type": "application/json", **(headers or {})}.items():
        head += f"{name}: {value}\r\n"
    if method != "GET" and method != "HEAD":
        head += f"content-length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _response(reader: asyncio.StreamReader, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    status_line = await asyncio.wait_for(reader.readline(), 60)
    assert status_line.startswith(b"HTTP/1.1 "), status_line  # nothing left of the previous reply
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    return status, headers, await reader.readexactly(length)


CALLS: list[tuple[str, str, dict[str, Any] | bytes | None, dict[str, str]]] = [
    ("POST", DEQUEUE, {"executorName": "e"}, EXECUTOR),  # nothing queued: 204
    ("GET", TEST_AUTH, None, EXECUTOR),
    ("GET", TEST_AUTH + "?queue=nope", None, EXECUTOR),  # unknown queue: 404
    ("POST", DEQUEUE, {"executorName": "e"}, {"Authorization": "token-executor wrong-secret"}),  # 401
    ("POST", DEQUEUE, b"{not json", EXECUTOR),  # 422
    (
        "POST",
        "/.executors/queue/batches/markComplete",
        {"executorName": "e", "jobId": 999},
        {"Authorization": "Bearer x"},
    ),
    ("POST", "/api/v1/jobs", {"queue": "batches", "dockerSteps": [STEP]}, {"Authorization": "Bearer wrong"}),  # 401
    ("POST", "/api/v1/jobs", {"queue": "batches", "dockerSteps": [STEP]}, {"Authorization": f"Bearer {API}"}),
    ("POST", DEQUEUE, {"executorName": "e"}, EXECUTOR),  # the job: 200
]
DYNAMIC = {"id", "token", "createdAt", "queuedAt", "startedAt", "lastHeartbeatAt"}  # differ between two servers


def _normalised(status: int, headers: dict[str, str], body: bytes) -> tuple[Any, ...]:
    content: Any = body
    if body[:1] == b"{":
        parsed = json.loads(body)
        content = {k: (None if k in DYNAMIC else v) for k, v in parsed.items()}
    kept = {k: v for k, v in headers.items() if k != "date" and not (k == "content-length" and body[:1] == b"{")}
    return status, kept, content


def _each(direct: bool, tmp_path: Path) -> Iterator[Any]:
    tmp_path.mkdir()

    async def scenario() -> list[tuple[Any, ...]]:
        async with serving(tmp_path, direct=direct) as fleet:
            host, port = fleet.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            got = []
            for method, path, body, headers in CALLS:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
                writer.write(_request(method, path, raw, headers))
                got.append(_normalised(*await _response(reader)))
            assert all((p.direct is not None) == direct for p in fleet.protocols())
            metrics = (await fleet.api.get("/metrics")).text
            route = 'method="POST",route="/.executors/queue/{queue}/dequeue"'
            got.append(
                tuple(line for line in metrics.splitlines() if line.startswith(f"fleet_http_requests_total{{{route}"))
            )
            writer.close()
            return got

    yield from asyncio.run(scenario())


def test_direct_answers_are_the_asgi_ones(tmp_path: Path) -> None:
    direct = list(_each(True, tmp_path / "direct"))
    through_asgi = list(_each(False, tmp_path / "asgi"))
    assert [r[0] for r in direct[:-1]] == [204, 200, 404, 401, 422, 401, 401, 201, 200]
    for call, ours, theirs in zip(CALLS, direct[:-1], through_asgi[:-1], strict=True):
        assert ours == theirs, call
    # Each call counted once, under its route and status, as through ASGI.
    assert direct[-1] == through_asgi[-1]
    assert sorted(direct[-1]) == [
        'fleet_http_requests_total{method="POST",route="/.executors/queue/{queue}/dequeue",status="200"} 1.0',
        'fleet_http_requests_total{method="POST",route="/.executors/queue/{queue}/dequeue",status="204"} 1.0',
        'fleet_http_requests_total{method="POST",route="/.executors/queue/{queue}/dequeue",status="401"} 1.0',
        'fleet_http_requests_total{method="POST",route="/.executors/queue/{queue}/dequeue",status="422"} 1.0',
    ]


@MODES
def test_pipelined_calls_keep_their_order_and_the_connection(tmp_path: Path, direct: bool) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, direct=direct) as fleet:
            host, port = fleet.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            submit = json.dumps({"queue": "batches", "dockerSteps": [STEP]}).encode()
            writer.write(  # three requests in one send: uvicorn queues the later ones
                _request("POST", DEQUEUE, b'{"executorName": "e"}', EXECUTOR)
                + _request("GET", TEST_AUTH, headers=EXECUTOR)
                + _request("POST", "/api/v1/jobs", submit, {"Authorization": "Bearer wrong"})  # handed back
            )
            answers = [await _response(reader) for _ in range(3)]
            assert [(s, b) for s, _, b in answers[:2]] == [(204, b""), (200, b"ok")]
            assert answers[2][0] == 401 and answers[2][1]["www-authenticate"] == "Bearer"
            writer.write(_request("HEAD", TEST_AUTH, headers=EXECUTOR))  # the ASGI way: a header, no body
            status, headers, _ = await _response(reader, head_only=True)
            assert (status, headers["content-length"]) == (200, "2")
            writer.write(_request("POST", DEQUEUE, b'{"executorName": "e"}', {**EXECUTOR, "Connection": "close"}))
            status, headers, _ = await _response(reader)
            assert (status, headers.get("connection")) == (204, "close")
            assert await asyncio.wait_for(reader.read(), 60) == b""  # and the server closed it

    asyncio.run(scenario())


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@MODES
def test_an_error_in_a_route_is_a_500_and_is_logged(tmp_path: Path, direct: bool) -> None:
    records = _Records()

    def broken(*_: Any) -> None:
        raise RuntimeError("claim broke")

    async def scenario() -> None:
        async with serving(tmp_path, direct=direct) as fleet:
            logging.getLogger("uvicorn.error").addHandler(records)  # after uvicorn configured its logging
            fleet.app.state.store.jobs.claim = broken
            host, port = fleet.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(_request("POST", DEQUEUE, b'{"executorName": "e"}', EXECUTOR))
            status, headers, body = await _response(reader)
            assert (status, headers["content-type"], body) == (
                500,
                "text/plain; charset=utf-8",
                b"Internal Server Error",
            )
            assert await asyncio.wait_for(reader.read(), 60) == b""  # a failed reply closes its connection
            got = await fleet.executor.get(TEST_AUTH)  # the server goes on
            assert got.status_code == 200

    try:
        asyncio.run(scenario())
    finally:
        logging.getLogger("uvicorn.error").removeHandler(records)
    errors = [r for r in records.records if r.getMessage().startswith("Exception in ASGI application")]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "claim broke"


@MODES
def test_a_client_leaving_mid_body_gets_nothing_and_breaks_nothing(tmp_path: Path, direct: bool) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, direct=direct) as fleet:
            host, port = fleet.url.removeprefix("http://").split(":")
            connections = fleet.server.server_state.connections
            reader, writer = await asyncio.open_connection(host, int(port))
            head = f"POST {DEQUEUE} HTTP/1.1\r\nhost: fleet\r\nauthorization: token-executor {SECRET}\r\n"
            writer.write(f"{head}content-type: application/json\r\ncontent-length: 100\r\n\r\n".encode() + b'{"exec')
            await writer.drain()
            await until(lambda: any(p.cycle is not None for p in fleet.protocols()), "the request began")
            writer.close()  # with 94 bytes of the body still to come
            await until(lambda: len(connections) == 0, "the server saw it go")
            assert fleet.server.server_state.tasks == set() or all(t.done() for t in fleet.server.server_state.tasks)
            assert fleet.writes == []  # nothing was written to it
            got = await fleet.executor.post(DEQUEUE, json={"executorName": "e"})
            assert got.status_code == 204

    asyncio.run(scenario())
