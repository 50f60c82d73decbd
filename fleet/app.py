"""The FastAPI application factory. The lifespan opens the store (running migrations) and runs the maintenance
services (fleet/maintenance/).

Errors keep one shape, `{"error": "<field>: <problem>", "detail": [...]}`, whatever the input (non-UTF-8 bodies,
NaN, lone surrogates: docs/control-plane.md, "Limits"). A database outage answers 503 with Retry-After and logs
one line when it starts and one when it ends, not a traceback per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet import __version__
from fleet.api import dashboard, executor_routes, git_proxy, jobs_routes, observability
from fleet.api.executor_entry import ExecutorEntry
from fleet.api.notify import DatabaseListener, QueueNotifier
from fleet.db.dialect import QUEUE_CHANNEL, listen_dsn
from fleet.maintenance import Running
from fleet.maintenance.retention import RetentionService
from fleet.maintenance.stall_resetter import StallResetter
from fleet.settings import ServerSettings
from fleet.store import Store, StoreConfig
from fleet.store.database import Clock, utcnow
from fleet.store.errors import DATABASE_ERRORS, Conflict, InvalidInput, NotFound, TokenOutOfScope, TokenUnknown

log = logging.getLogger("fleet.server")
# Bodies beyond this are refused with 413 (docs/control-plane.md, "Limits"): room for a log entry of
# FLEET_MAX_LOG_ENTRY_BYTES JSON-escaped several times over, and for job files of a few MiB.
MAX_BODY_BYTES = 32 * 1024 * 1024
RETRY_AFTER_SECONDS = 2
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def store_config(settings: ServerSettings) -> StoreConfig:
    # The fields share the settings' names, so the store gets exactly its part of them.
    return StoreConfig(**settings.model_dump(include={f.name for f in fields(StoreConfig)}))


def database_down(app: FastAPI, exc: BaseException) -> None:
    """Record a failed database call; only the first of an outage is logged."""
    if app.state.store.resetter.mark_unreachable():
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.error("database unreachable (%s); answering 503 until it is back", first[:300])


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _plain_errors(errors: Any) -> list[dict[str, Any]]:
    """loc, msg and type only: the rejected input may be bytes that are not UTF-8, NaN or a lone surrogate, which
    no JSON encoder takes, and echoing it back is of no use to the caller anyway."""
    out = []
    for err in errors:
        loc = [p if isinstance(p, int) else str(p).encode("utf-8", "replace").decode() for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid")).encode("utf-8", "replace").decode()
        out.append({"loc": loc, "msg": msg, "type": str(err.get("type", "value_error"))})
    return out


def validation_error(errors: Any) -> JSONResponse:
    plain = _plain_errors(errors)
    return JSONResponse({"error": _validation_message(plain), "detail": plain}, status_code=422)


class BodyLimit:
    """413 for a body over MAX_BODY_BYTES: at once from Content-Length, or as soon as a chunked body passes it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, f"request body over the limit of {self.limit} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = JSONResponse({"error": too_large.detail, "detail": too_large.detail}, status_code=413)
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise too_large  # FastAPI and Starlette turn an HTTPException raised while reading into its status
            return message

        await self.app(scope, limited, send)


class FleetApp(FastAPI):
    """The application; its own entry hands executor protocol calls to fleet/api/executor_entry.py first."""

    protocol: ExecutorEntry | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = self.protocol
        route = protocol.route(scope) if protocol is not None and scope["type"] == "http" else None
        if protocol is None or route is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette sets: request.app, and the exception handlers
        handed_back = await protocol.serve(route, scope, receive, send)
        if handed_back is not None:
            await self.full_stack(scope, handed_back.receive(receive), send)

    async def full_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application without its protocol entry (FastAPI's middleware, router and routes), for a call the
        entry handed back."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServerSettings, clock: Clock = utcnow, store: Store | None = None, announce_ready: bool = False
) -> FastAPI:
    """announce_ready: log "ready" at the end of start-up, for workers whose socket the supervisor already bound
    (a single-process `fleet server` logs it itself once uvicorn serves)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.store = store or await run_in_threadpool(
            Store.open, settings.database_url, clock, store_config(settings)
        )
        await run_in_threadpool(app.state.store.queues.ensure, settings.queue_names)
        app.state.notifier.bind(asyncio.get_running_loop(), app.state.store.db)
        dsn = listen_dsn(app.state.store.db.engine)
        listener = DatabaseListener(dsn, QUEUE_CHANNEL, app.state.notifier) if dsn else None
        if listener:
            listener.start()
        queue_collector = observability.QueueCollector(app.state.store, settings.heartbeat_interval_seconds)
        app.state.metrics_registry.register(queue_collector)
        app.state.store.resetter.hold()  # executors could not heartbeat while this server was not running
        interval = settings.resetter_interval_seconds
        on_error = functools.partial(database_down, app)
        maintenance = Running(
            [
                StallResetter(app.state.store, interval, on_error, settings.stalled_job_seconds),
                RetentionService(app.state.store, interval, on_error),
            ]
        )
        if announce_ready:
            log.info("fleet server %s ready on %s", __version__, settings.resolved_external_url)
        try:
            yield
        finally:
            app.state.metrics_registry.unregister(queue_collector)
            if listener:
                await run_in_threadpool(listener.stop)
            await maintenance.stop()
            if owned:
                await app.state.store.aclose()

    app = FleetApp(title="executor-fleet", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.notifier = QueueNotifier(settings.long_poll_recheck_seconds)

    app.state.metrics_registry, request_metrics = observability.build_registry()
    app.add_middleware(observability.RequestMetricsMiddleware, metrics=request_metrics)
    app.add_middleware(BodyLimit)
    # Protocol calls skip FastAPI's and Starlette's layers, the two above and the router (FleetApp.__call__).
    protocol_routes = [r for r in executor_routes.routes if isinstance(r, Route)]
    app.protocol = ExecutorEntry(protocol_routes, request_metrics, MAX_BODY_BYTES, exact=[jobs_routes.submit_entry])

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:  # e.g. bytes that are not UTF-8
            return validation_error([{"loc": ["body"], "msg": "is not valid UTF-8 JSON", "type": "json_invalid"}])
        return JSONResponse(
            {"error": str(exc.detail), "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(InvalidInput)
    async def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return validation_error([{"loc": ["body"], "msg": str(exc), "type": "value_error"}])

    for error in DATABASE_ERRORS:

        @app.exception_handler(error)
        async def _database(request: Request, exc: Exception) -> JSONResponse:
            database_down(request.app, exc)
            return JSONResponse(
                {"error": "the job store's database is unreachable; try again shortly", "detail": "database"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    def _handler(status: int, headers: dict[str, str] | None = None) -> Any:
        async def handle(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": str(exc), "detail": str(exc)}, status_code=status, headers=headers)

        return handle

    app.add_exception_handler(NotFound, _handler(404))
    app.add_exception_handler(Conflict, _handler(409))
    # A job token's refusals (fleet.store.tokens): the same bodies and challenge as any other 401 and 403.
    app.add_exception_handler(TokenUnknown, _handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(TokenOutOfScope, _handler(403))

    app.router.routes.extend(executor_routes.routes)
    for module in (git_proxy, jobs_routes, observability, dashboard):
        app.include_router(module.router)
    return app


def create_app_from_env() -> FastAPI:
    """The factory `fleet server --workers N` hands to uvicorn: each worker process reads FLEET_* itself."""
    level = os.environ.get("FLEET_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(ServerSettings(), announce_ready=True)  # type: ignore[call-arg]  # required fields come from the environment
