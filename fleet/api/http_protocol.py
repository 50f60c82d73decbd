"""The server's HTTP protocol: uvicorn's httptools protocol, with a reply's writes sent as one.

uvicorn writes a reply's status line and headers, then its body, each straight to the socket: two sends per reply.
On loopback and on a busy host each send costs a system call and the receiving side's TCP work, and an executor's
protocol calls are small replies by the thousand (docs/control-plane.md, "Performance notes"). Here the writes
made during one turn of the event loop are held and sent together at the end of it, so a reply whose head and
body are written in the same turn (every reply with a Content-Length) goes out in one send. Large or streamed
bodies are not delayed beyond a turn nor held past WRITE_HOLD_BYTES, and flow control still sees every byte: the
transport's own buffer is written at once once held bytes pass the bound.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

WRITE_HOLD_BYTES = 64 * 1024


class _TurnWrites:
    """A transport whose writes wait for the end of the event loop's current turn; everything else is the
    transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= WRITE_HOLD_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        held, self._held, self._held_bytes = self._held, [], 0
        if not self._transport.is_closing():  # a connection lost meanwhile takes nothing more
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()  # uvicorn closes after the last write of a reply without keep-alive
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


CLOSING_KEY = "fleet.closing"  # in a request's scope: a call saying whether its connection is closing or lost


def client_gone(scope: Scope) -> bool | None:
    """Whether the client of this request has gone, without a turn of the event loop; None where the server
    is not this module's (tests' in-process transports), whose callers ask Starlette's is_disconnected()."""
    closing = scope.get(CLOSING_KEY)
    return None if closing is None else bool(closing())


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what uvicorn picks by default here), writing through _TurnWrites, and telling
    a request whether its client has gone (client_gone) without the turn of the loop that Starlette's
    is_disconnected() takes: a woken dequeue asks it before it claims, and that turn let the submission that
    woke it reply first, adding the rest of the submission's work to the pickup latency."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        # Flow control keeps the real transport (it pauses and resumes reading); replies write through this.
        self.transport = _TurnWrites(transport, self.loop)  # type: ignore[assignment]  # the same interface

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The transport closes at once on EOF or a reset, before uvicorn's connection_lost runs.
        self.scope[CLOSING_KEY] = self.transport.is_closing  # type: ignore[literal-required]  # a key of ours
