"""The server's HTTP protocol: uvicorn's httptools protocol, with a reply's writes sent as one, and executor
protocol calls served on the connection itself.

uvicorn writes a reply's status line and headers, then its body, each straight to the socket: two sends per reply.
On loopback and on a busy host each send costs a system call and the receiving side's TCP work, and an executor's
protocol calls are small replies by the thousand (docs/control-plane.md, "Performance notes"). Here the writes
made during one turn of the event loop are held and sent together at the end of it, so a reply whose head and
body are written in the same turn (every reply with a Content-Length) goes out in one send. Large or streamed
bodies are not delayed beyond a turn nor held past WRITE_HOLD_BYTES, and flow control still sees every byte: the
transport's own buffer is written at once once held bytes pass the bound.

A call the application's protocol entry takes (fleet/api/executor_entry.py: the executor protocol and job
submissions) is served by `_serve_direct` instead of through ASGI: the route gets the body uvicorn parsed, and its
response is written as one head-and-body write. That skips uvicorn's proxy-headers middleware, the ASGI messages
and their checks, and Starlette's sending of the response, which cost a tenth of the server's CPU per job cycle.
The connection's handling stays uvicorn's (keep-alive, pipelining, flow control, shutdown, concurrency limit):
the request still has its uvicorn cycle, and the task serving it is started where uvicorn starts it. Anything
unusual (Expect: 100-continue, HEAD, a response without a Content-Length or one that streams, a call the route
hands back, an application wrapped in anything but uvicorn's proxy-headers middleware) goes the ASGI way.
The protocol's routes (and the full stack's answer to a submission handed back) read neither the client's
address nor the scheme, which proxy headers would rewrite; only the access log (`--log-level debug`) names the
connection's peer for such a call instead of X-Forwarded-For's.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, cast

from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from fleet.api.executor_entry import ExecutorEntry, FullStack

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
BODY_KEY = "fleet.body"  # in a request's scope: its whole body, when the protocol read it before the route ran


def client_gone(scope: Scope) -> bool | None:
    """Whether the client of this request has gone, without a turn of the event loop; None where the server
    is not this module's (tests' in-process transports), whose callers ask Starlette's is_disconnected()."""
    closing = scope.get(CLOSING_KEY)
    return None if closing is None else bool(closing())


def request_body(scope: Scope) -> bytes | None:
    """The request's body when this protocol has read it already (a call it serves directly), else None: the
    route reads it from the request as usual."""
    body: bytes | None = scope.get(BODY_KEY)
    return body


def _direct_entry(app: Any) -> tuple[Any, ExecutorEntry] | None:
    """The application and its protocol entry, when nothing but uvicorn's proxy-headers middleware wraps it."""
    while isinstance(app, ProxyHeadersMiddleware):
        app = app.app
    entry = getattr(app, "protocol", None)
    return (app, entry) if isinstance(entry, ExecutorEntry) else None


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what uvicorn picks by default here), writing through _TurnWrites, telling
    a request whether its client has gone (client_gone) without the turn of the loop that Starlette's
    is_disconnected() takes (a woken dequeue asks it before it claims; that turn let the submission that woke it
    reply first, adding the rest of the submission's work to the pickup latency), and serving the calls the
    application's protocol entry takes directly (_serve_direct)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        # Flow control keeps the real transport (it pauses and resumes reading); replies write through this.
        self.transport = _TurnWrites(transport, self.loop)  # type: ignore[assignment]  # the same interface
        self.direct = _direct_entry(self.app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The transport closes at once on EOF or a reset, before uvicorn's connection_lost runs.
        self.scope[CLOSING_KEY] = self.transport.is_closing  # type: ignore[literal-required]  # a key of ours

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn calls this for each request, at once or when the pipelined ones before it are answered.
        direct, route = self.direct, None
        if (
            direct is not None
            and app is self.app  # another one when uvicorn answers 503 for its concurrency limit
            and not cycle.waiting_for_100_continue
            and cycle.scope["method"] != "HEAD"  # uvicorn's send leaves out a HEAD reply's body
        ):
            route = direct[1].route(cast(Scope, cycle.scope))
        if direct is None or route is None:
            super()._start_asgi_task(cycle, app)
            return
        # As uvicorn does (its option is recent: absent, it is off).
        context = contextvars.Context() if getattr(self.config, "reset_contextvars", False) else None
        task = self.loop.create_task(_serve_direct(direct[0], direct[1], route, cycle), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


async def _serve_direct(fleet_app: Any, entry: ExecutorEntry, route: Route, cycle: RequestResponseCycle) -> None:
    """Serve one call the entry took, as uvicorn's cycle.run_asgi would serve it through the application."""
    scope: Any = cycle.scope
    try:
        parts = []
        while True:
            message = await cycle.receive()
            if message["type"] != "http.request":
                return  # the client left before its body was in: nobody to answer
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        scope["app"] = fleet_app  # as FleetApp.__call__ sets it
        scope[BODY_KEY] = body
        replayed = FullStack(body).receive(cast(Receive, cycle.receive))  # for a route that reads the request itself

        async def reply(response: Response) -> None:
            await _write(cycle, response, replayed)

        handed_back = await entry.answer(route, scope, replayed, reply)
        if handed_back is not None:
            del scope[BODY_KEY]

            async def full_stack(s: Any, receive: Any, send: Any) -> None:
                await fleet_app.full_stack(s, handed_back.receive(receive), send)

            await cycle.run_asgi(full_stack)  # logs and answers its own errors
    except BaseException as exc:  # as uvicorn's run_asgi: the error is logged and the connection answered
        cycle.logger.error("Exception in ASGI application\n", exc_info=exc)
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
    finally:
        cycle.on_response = lambda: None


async def _write(cycle: RequestResponseCycle, response: Response, receive: Any) -> None:
    """Send a complete response in one write, doing what uvicorn's cycle.send does for it; a response this does
    not take (streamed, or without a Content-Length where one is due) goes through cycle.send."""
    status = response.status_code
    headers = response.raw_headers
    if type(response).__call__ is not Response.__call__ or (
        status not in (204, 304) and not any(name == b"content-length" for name, _ in headers)
    ):
        await response(cast(Scope, cycle.scope), receive, cast(Send, cycle.send))
        return
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return
    if cycle.access_log:
        cycle.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(cycle.scope),
            cycle.scope["method"],
            get_path_with_query_string(cycle.scope),
            cycle.scope["http_version"],
            status,
        )
    content: list[bytes | memoryview] = [STATUS_LINE[status]]
    says_close = False
    for name, value in (*cycle.default_headers, *headers):
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            raise RuntimeError(f"invalid HTTP header {name!r}")
        if name == b"connection" and b"close" in [token.strip() for token in value.lower().split(b",")]:
            cycle.keep_alive = False
            says_close = True
        content.extend([name, b": ", value, b"\r\n"])
    if not cycle.keep_alive and not says_close:
        content.append(b"connection: close\r\n")
    content.extend([b"\r\n", response.body])
    cycle.response_started = True  # only now: a header refused above leaves room for the 500
    cycle.transport.write(b"".join(content))  # held to the turn's end with the other replies (_TurnWrites)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    if response.background is not None:
        await response.background()
