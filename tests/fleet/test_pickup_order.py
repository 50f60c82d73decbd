"""A submission hands its job to a parked dequeue before it replies, and a dequeue whose client has gone is not
handed the job (fleet/api/http_protocol.py client_gone, fleet/api/jobs_routes.py submit_job).

The server is the real application under uvicorn with the server's own HTTP protocol, on a loopback socket, in
this test's event loop (tests/support/inproc_server.py), so the order in which replies were written can be
recorded, and the notifier's waiters and the server's connections read, instead of waiting on the clock. Each
test runs with the protocol serving calls itself (direct) and through ASGI.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.inproc_server import SECRET, serving, until

STEP = {"image": "busybox", "commands": ["true"]}
DEQUEUE = "/.executors/queue/batches/dequeue"
MODES = pytest.mark.parametrize("direct", [True, False], ids=["direct", "asgi"])


async def submit(client: httpx.AsyncClient) -> int:
    r = await client.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@MODES
def test_a_parked_dequeue_is_answered_before_the_submission_that_woke_it(tmp_path: Path, direct: bool) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, direct=direct) as fleet:
            app, api, executor = fleet.app, fleet.api, fleet.executor
            for round_ in range(3):
                poll = asyncio.create_task(executor.post(DEQUEUE, params={"wait": 30}, json={"executorName": "e"}))
                await until(lambda: app.state.notifier.waiting("batches") == 1, "the dequeue parked")
                assert all((p.direct is not None) == direct for p in fleet.protocols())
                fleet.writes.clear()
                job_id = await submit(api)
                got = await poll
                assert got.status_code == 200 and int(got.json()["id"]) == job_id
                assert fleet.writes == [DEQUEUE, "/api/v1/jobs"], (round_, fleet.writes)

    asyncio.run(scenario())


@MODES
def test_a_parked_dequeue_whose_client_left_is_not_handed_the_job(tmp_path: Path, direct: bool) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, direct=direct) as fleet:
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
