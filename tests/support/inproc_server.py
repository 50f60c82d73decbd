"""The real application under uvicorn with the server's own HTTP protocol (fleet/api/http_protocol.py), on a
loopback socket, in the test's event loop: tests can read the notifier's waiters and the server's connections
instead of waiting on the clock, and record what each connection wrote and for which request.

`direct=False` serves the application wrapped in a pass-through ASGI layer: the protocol then finds no entry of
its own to serve calls with and every call goes through ASGI (FleetApp.__call__), as for any wrapped app.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from fleet.api.http_protocol import HttpProtocol
from fleet.app import create_app
from fleet.settings import ServerSettings

SECRET = "inproc-executor-secret"
API = "inproc-api-token-for-tests"
EXECUTOR = {"Authorization": f"token-executor {SECRET}"}


class _Recorder:
    """A connection's transport, noting the path of the request being served at each write."""

    def __init__(self, transport: asyncio.Transport, protocol: HttpProtocol, writes: list[str]) -> None:
        self._transport = transport
        self._protocol = protocol
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(self._protocol.scope["path"])
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@dataclass
class Fleet:
    url: str
    app: Any  # the FleetApp
    server: uvicorn.Server
    api: httpx.AsyncClient  # with the API token
    executor: httpx.AsyncClient  # with the executors' secret
    writes: list[str] = field(default_factory=list)  # per socket write, the path of the request it answered

    def protocols(self) -> list[HttpProtocol]:
        return [p for p in self.server.server_state.connections if isinstance(p, HttpProtocol)]


@asynccontextmanager
async def serving(tmp_path: Path, direct: bool = True, **settings: Any) -> AsyncIterator[Fleet]:
    app = create_app(
        ServerSettings(
            database_url=f"sqlite:///{tmp_path}/fleet.db", executors_access_token=SECRET, api_token=API, **settings
        )  # type: ignore[call-arg]
    )
    writes: list[str] = []

    class Recording(HttpProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_Recorder(transport, self, writes))  # type: ignore[arg-type]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    served = app if direct else _PassThrough(app)
    server = uvicorn.Server(uvicorn.Config(served, http=Recording, lifespan="on", log_level="warning"))
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
            yield Fleet(url, app, server, api, executor, writes)
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
