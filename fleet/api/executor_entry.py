"""The executor protocol's own entry into the application, ahead of the middleware stack.

Every executor calls /.executors/ several times per job. Through the full stack each call passed the body
limit, the request metrics, Starlette's exception middleware and a router that tried every route's pattern in
turn; together they cost more than the store's statement (docs/control-plane.md, "Performance notes"). Here a
protocol call finds its route by its last path segment, runs with the same exception handlers and is counted in
the same request metrics; anything else (another path, a method the route does not take, a body without a
Content-Length or over the limit) goes through the full stack unchanged, which answers it as before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.api.observability import RequestMetrics

PREFIX = "/.executors/"


class ExecutorEntry:
    def __init__(self, app: ASGIApp, routes: Iterable[Route], metrics: RequestMetrics, body_limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.body_limit = body_limit
        # Every protocol path ends in its action (dequeue, markComplete, ...): at most a single-queue and a
        # multi-queue route share one, so a call tries one or two patterns instead of all of them.
        self.by_action: dict[str, list[Route]] = {}
        for route in routes:
            self.by_action.setdefault(route.path.rsplit("/", 1)[1], []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        try:
            response = await self._respond(route, scope, receive)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.metrics.record(scope["method"], route.path, status, time.perf_counter() - start)

    def _route(self, scope: Scope) -> Route | None:
        path: str = scope["path"]
        if not path.startswith(PREFIX) or not self._body_fits(scope):
            return None
        for route in self.by_action.get(path.rsplit("/", 1)[1], ()):
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)  # path_params, and the route for anything that reads it
                return route
        return None

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
                raise  # Starlette's server-error middleware, outside this one, answers 500 and logs it
            return await handler(request, exc)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _handler_for(scope: Scope, exc: Exception) -> Handler | None:
    """The application's handler for this exception, looked up along its classes as Starlette does."""
    handlers: dict[Any, Handler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
