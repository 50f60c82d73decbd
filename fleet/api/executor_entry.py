"""The executor protocol's own entry into the application, ahead of FastAPI's and Starlette's layers.

Every executor calls /.executors/ several times per job. Through the full stack each call passed FastAPI's
telemetry check (environment lookups per request), Starlette's error and exception middleware, the body limit,
the request metrics and a router that tried every route's pattern in turn; together they cost more than the
store's statement (docs/control-plane.md, "Performance notes"). Here the application's own `__call__`
(fleet.app.FleetApp) hands a protocol call to this entry, which finds its route by the path's last segment,
runs it with the same exception handlers, answers an unhandled error with the same plain 500 and counts it in
the same request metrics. Anything else (another path, a method the route does not take, a body without a
Content-Length or over the limit) goes through the full stack unchanged, which answers it as before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from fleet.api.observability import RequestMetrics

PREFIX = "/.executors/"


class ExecutorEntry:
    def __init__(self, routes: Iterable[Route], metrics: RequestMetrics, body_limit: int) -> None:
        self.metrics = metrics
        self.body_limit = body_limit
        # Every protocol path ends in its action (dequeue, markComplete, ...): at most a single-queue and a
        # multi-queue route share one, so a call tries one or two patterns instead of all of them.
        self.by_action: dict[str, list[Route]] = {}
        for route in routes:
            self.by_action.setdefault(route.path.rsplit("/", 1)[1], []).append(route)

    def route(self, scope: Scope) -> Route | None:
        """The protocol route that takes this request here, or None to leave it to the full stack."""
        path: str = scope["path"]
        if not path.startswith(PREFIX) or not self._body_fits(scope):
            return None
        for route in self.by_action.get(path.rsplit("/", 1)[1], ()):
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)  # path_params, and the route for anything that reads it
                return route
        return None

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500
        try:
            try:
                response = await self._respond(route, scope, receive)
            except Exception:
                # As Starlette's server-error middleware does: a plain 500 (nothing was sent yet), and the error
                # goes on to uvicorn, which logs its traceback.
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
                raise
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.metrics.record(scope["method"], route.path, status, time.perf_counter() - start)

    def _body_fits(self, scope: Scope) -> bool:
        if scope["method"] == "GET":
            return True
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) <= self.body_limit
        return False  # chunked: the full stack's BodyLimit counts it as it arrives

    @staticmethod
    async def _respond(route: Route, scope: Scope, receive: Receive) -> Response:
        request = Request(scope, receive)
        try:
            return await route.endpoint(request)
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
