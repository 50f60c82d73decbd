"""A submission hands its job to a parked dequeue before it replies, and a dequeue whose client has gone is not
handed the job (fleet/api/http_protocol.py client_gone, fleet/api/jobs_routes.py submit_job).

The server is the real application under uvicorn with the server's own HTTP protocol, on a loopback socket, in
this test's event loop, so the order in which the application finished its replies can be recorded, and the
notifier's waiters and the server's connections read, instead of waiting on the clock.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from fleet.api.http_protocol import HttpProtocol
from fleet.app import create_app
from fleet.settings import ServerSettings

SECRET = "pickup-order-executor-secret"
API = "pickup-order-api-token"
STEP = {"image": "busybox", "commands": ["true"]}
EXECUTOR = {"Authorization": f"token-executor {SECRET}"}
DEQUEUE = "/.executors/queue/batches/dequeue"


class ReplyOrder:
    """The application, recording each request's path when its reply's last body part is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.finished: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.finished.append(scope["path"])
            await send(message)

        await self.app(scope, receive, recording if scope["type"] == "http" else send)


@dataclass
class Fleet:
    url: str
    app: Any
    order: ReplyOrder
    server: uvicorn.Server
    api: httpx.AsyncClient  # with the API token
    executor: httpx.AsyncClient  # with the executors' secret


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Fleet]:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path}/fleet.db", executors_access_token=SECRET, api_token=API
    )  # type: ignore[call-arg]
    app = create_app(settings)
    order = ReplyOrder(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(order, http=HttpProtocol, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task.exception() if task.done() else None
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {API}"}, timeout=60) as api,
            httpx.AsyncClient(base_url=url, headers=EXECUTOR, timeout=60) as executor,
        ):
            yield Fleet(url, app, order, server, api, executor)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=60)
        sock.close()


async def until(check: Any, what: str) -> None:
    for _ in range(6000):  # 60 s: a bound for a broken build, not a timing
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def submit(client: httpx.AsyncClient) -> int:
    r = await client.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_a_parked_dequeue_is_answered_before_the_submission_that_woke_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as fleet:
            app, order, api, executor = fleet.app, fleet.order, fleet.api, fleet.executor
            for round_ in range(3):
                poll = asyncio.create_task(executor.post(DEQUEUE, params={"wait": 30}, json={"executorName": "e"}))
                await until(lambda: app.state.notifier.waiting("batches") == 1, "the dequeue parked")
                order.finished.clear()
                job_id = await submit(api)
                got = await poll
                assert got.status_code == 200 and int(got.json()["id"]) == job_id
                assert order.finished == [DEQUEUE, "/api/v1/jobs"], (round_, order.finished)

    asyncio.run(scenario())


def test_a_parked_dequeue_whose_client_left_is_not_handed_the_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as fleet:
            app, server, api, executor = fleet.app, fleet.server, fleet.api, fleet.executor
            host, port = fleet.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            body = b'{"executorName": "gone"}'
            writer.write(
                f"POST {DEQUEUE}?wait=30 HTTP/1.1\r\nhost: fleet\r\nauthorization: token-executor {SECRET}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            await until(lambda: app.state.notifier.waiting("batches") == 1, "the dequeue parked")
            connections = len(server.server_state.connections)
            writer.close()  # the executor gives up while parked
            await until(lambda: len(server.server_state.connections) < connections, "the server saw it go")
            assert app.state.notifier.waiting("batches") == 1  # still parked: it learns when it is woken

            job_id = await submit(api)
            await until(lambda: app.state.notifier.waiting("batches") == 0, "the woken dequeue left")
            job = (await api.get(f"/api/v1/jobs/{job_id}")).json()
            assert job["state"] == "queued", job  # not handed to an executor that is not there

            got = await executor.post(DEQUEUE, json={"executorName": "here"})
            assert got.status_code == 200 and int(got.json()["id"]) == job_id
            assert (await reader.read()) == b""  # nothing was written to the one that left

    asyncio.run(scenario())
