"""The executor protocol's own entry into the application, ahead of FastAPI's and Starlette's layers.

Every executor calls /.executors/ several times per job. Through the full stack each call passed FastAPI's
telemetry check (environment lookups per request), Starlette's error and exception middleware, the body limit,
the request metrics and a router that tried every route's pattern in turn; together they cost more than the
store's statement (docs/control-plane.md, "Performance notes"). Here the application's own `__call__`
(fleet.app.FleetApp) hands a protocol call to this entry, which finds its route by the path's last segment,
runs it with the same exception handlers, answers an unhandled error with the same plain 500 and counts it in
the same request metrics. Anything else (another path, a method the route does not take, a body without a
Content-Length or over the limit) goes through the full stack unchanged, which answers it as before. Under
`fleet server` the HTTP protocol (fleet/api/http_protocol.py) finds this entry itself and serves the calls it
takes without ASGI at all, through answer(): the same routes, handlers and metrics, the reply written at once.

A job submission (POST /api/v1/jobs, what a parked executor's pickup waits on) enters here too, by its whole
path. Its route answers only a call it can answer as the full stack would (the API token right, a JSON body
the submission model takes); anything else it hands back (FullStack) with the body it read, and the full stack
answers that, its refusals and 422s included.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from fleet.api.observability import RequestMetrics

PREFIX = "/.executors/"
MAX_MATCHED = 1024
Reply = Callable[[Response], Awaitable[None]]  # sends a route's response


@dataclass(frozen=True)
class FullStack:
    """What an entry route returns for a call it leaves to the full stack, with the body it has read."""

    body: bytes

    def receive(self, receive: Receive) -> Receive:
        """The request's receive, giving the body read here first."""
        pending = [{"type": "http.request", "body": self.body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay


class ExecutorEntry:
    def __init__(
        self, routes: Iterable[Route], metrics: RequestMetrics, body_limit: int, exact: Iterable[Route] = ()
    ) -> None:
        self.metrics = metrics
        self.body_limit = body_limit
        # Routes outside the protocol taken by their whole path (the job submission); they may hand a call back.
        self.exact = {route.path: route for route in exact}
        # Every protocol path ends in its action (dequeue, markComplete, ...): at most a single-queue and a
        # multi-queue route share one, so a call tries one or two patterns instead of all of them.
        self.by_action: dict[str, list[Route]] = {}
        # What a (method, path) matched: the same few paths come again and again, and matching costs regexes.
        self._matched: dict[tuple[str, str], tuple[Route | None, dict[str, Any]]] = {}
        for route in routes:
            self.by_action.setdefault(route.path.rsplit("/", 1)[1], []).append(route)

    def route(self, scope: Scope) -> Route | None:
        """The protocol route that takes this request here, or None to leave it to the full stack."""
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            exact = self.exact.get(path)
            fits = exact is not None and scope["method"] in (exact.methods or ()) and self._body_fits(scope)
            return exact if fits else None
        if not self._body_fits(scope):
            return None
        key = (scope["method"], path)
        found = self._matched.get(key)
        if found is None:
            found = self._match(scope)
            if len(self._matched) >= MAX_MATCHED:
                self._matched.clear()  # paths name queues, and a caller may send any: the cache stays bounded
            self._matched[key] = found
        route, child = found
        if route is not None:
            scope.update(child)  # path_params, and the route for anything that reads it
            scope["path_params"] = dict(child["path_params"])  # the request's own
        return route

    def _match(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        for route in self.by_action.get(scope["path"].rsplit("/", 1)[1], ()):
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, dict(child)
        return None, {}

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> FullStack | None:
        """Answer the call; or, when its route hands it back, nothing is sent or counted and the caller has the
        full stack answer it (FullStack.receive)."""

        async def reply(response: Response) -> None:
            await response(scope, receive, send)

        return await self.answer(route, scope, receive, reply)

    async def answer(self, route: Route, scope: Scope, receive: Receive, reply: Reply) -> FullStack | None:
        """serve(), with the response handed to `reply` to send: the server's HTTP protocol writes it to the
        connection itself (fleet/api/http_protocol.py)."""
        start = time.perf_counter()
        status = 500
        counted = True
        try:
            try:
                response = await self._respond(route, scope, receive)
            except Exception:
                # As Starlette's server-error middleware does: a plain 500 (nothing was sent yet), and the error
                # goes on to uvicorn, which logs its traceback.
                await reply(PlainTextResponse("Internal Server Error", status_code=500))
                raise
            if isinstance(response, FullStack):
                counted = False  # the full stack counts it
                return response
            status = response.status_code
            await reply(response)
            return None
        finally:
            if counted:
                self.metrics.record(scope["method"], route.path, status, time.perf_counter() - start)

    def _body_fits(self, scope: Scope) -> bool:
        if scope["method"] == "GET":
            return True
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) <= self.body_limit
        return False  # chunked: the full stack's BodyLimit counts it as it arrives

    @staticmethod
    async def _respond(route: Route, scope: Scope, receive: Receive) -> Response | FullStack:
        request = Request(scope, receive)
        try:
            answer: Response | FullStack = await route.endpoint(request)
            return answer
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise  # serve() answers 500
            return await handler(request, exc)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _handler_for(scope: Scope, exc: Exception) -> Handler | None:
    """The application's handler for this exception, looked up along its classes as Starlette does."""
    handlers: dict[Any, Handler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
