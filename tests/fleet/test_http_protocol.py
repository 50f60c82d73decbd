"""fleet/api/http_protocol.py: a reply's writes leave in one send, on real sockets, and nothing is held too long or
lost. The transport is asyncio's own over a socket pair; only its writes are counted, on their way through."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from fleet.api.http_protocol import WRITE_HOLD_BYTES, _TurnWrites
from tests.support.fleet_server import FleetServer

STEP = {"image": "busybox", "commands": ["true"]}


class Counted:
    """The real transport, with its write calls recorded."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _pair() -> tuple[Counted, socket.socket]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    theirs.setblocking(False)
    return Counted(transport), theirs


async def _read(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < n:
        data += await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), timeout=30)
    return data


def test_writes_of_one_turn_leave_as_one_send() -> None:
    async def scenario() -> None:
        counted, peer = await _pair()
        writes = _TurnWrites(counted, asyncio.get_running_loop())  # type: ignore[arg-type]  # a transport's interface
        writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        writes.write(b"")  # uvicorn writes an empty body for a 204: nothing to send
        writes.write(b"{}")
        assert counted.writes == []  # held until the turn ends
        got = await _read(peer, 40)
        assert counted.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        assert got == counted.writes[0]
        writes.write(b"next turn")  # a later turn: its own send
        assert await _read(peer, 9) == b"next turn"
        assert len(counted.writes) == 2
        writes.close()
        peer.close()

    asyncio.run(scenario())


def test_a_large_body_is_not_held_and_close_sends_what_is_held() -> None:
    async def scenario() -> None:
        counted, peer = await _pair()
        writes = _TurnWrites(counted, asyncio.get_running_loop())  # type: ignore[arg-type]
        chunk = b"x" * (WRITE_HOLD_BYTES // 2)
        writes.write(chunk)
        writes.write(chunk)  # past the bound: written at once, within the turn
        assert counted.writes == [chunk * 2]
        writes.write(b"tail")
        writes.close()  # a reply without keep-alive closes after its last write: that write still goes
        assert counted.writes[-1] == b"tail"
        assert await _read(peer, len(chunk) * 2 + 4) == chunk * 2 + b"tail"
        peer.close()

    asyncio.run(scenario())


def test_held_writes_after_a_lost_connection_are_dropped() -> None:
    async def scenario() -> None:
        counted, peer = await _pair()
        writes = _TurnWrites(counted, asyncio.get_running_loop())  # type: ignore[arg-type]
        writes.write(b"never sent")
        counted.transport.abort()  # lost before the turn ended
        await asyncio.sleep(0)  # the turn ends; the flush finds the transport closing and writes nothing
        await asyncio.sleep(0)
        assert counted.writes == []
        peer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [10, 3 * WRITE_HOLD_BYTES])
def test_the_server_replies_whole_through_it(fleet_server: FleetServer, size: int) -> None:
    """`fleet server` speaks this protocol: a log entry small or past the hold bound comes back whole, and a
    keep-alive connection carries the replies one after another."""
    out = "".join(chr(ord("a") + i % 26) for i in range(size))
    with fleet_server.api() as api, fleet_server.executor() as ex:
        assert api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).status_code == 201
        job = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "e"}).json()
        entry = {
            "executorName": "e",
            "jobId": job["id"],
            "key": "step.0",
            "command": ["true"],
            "startTime": "2026-12-03T00:00:00Z",
            "exitCode": 0,
            "out": out,
            "durationMs": 1,
        }
        auth = {"Authorization": f"Bearer {job['token']}"}
        assert ex.post("/.executors/queue/batches/addExecutionLogEntry", json=entry, headers=auth).status_code == 200
        for _ in range(3):  # the same connection each time
            logs = api.get(f"/api/v1/jobs/{job['id']}/logs")
            assert logs.status_code == 200
            assert out in logs.text
