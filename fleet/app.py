"""The FastAPI application factory. The lifespan opens the store (running migrations) and runs the resetter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fleet import __version__
from fleet.api import dashboard, executor_routes, git_proxy, jobs_routes, observability
from fleet.api.notify import DatabaseListener, QueueNotifier
from fleet.db.dialect import QUEUE_CHANNEL, listen_dsn
from fleet.settings import ServerSettings
from fleet.store import Store, StoreConfig
from fleet.store.database import Clock, utcnow
from fleet.store.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("fleet.server")


def store_config(settings: ServerSettings) -> StoreConfig:
    return StoreConfig(
        default_max_retries=settings.max_retries,
        default_retry_delay_seconds=settings.retry_delay_seconds,
        stalled_job_seconds=settings.stalled_job_seconds,
        max_resets=settings.max_resets,
        max_log_entry_bytes=settings.max_log_entry_bytes,
        job_retention_seconds=settings.job_retention_days * 86400,
    )


async def _run_resetter(app: FastAPI) -> None:
    store: Store = app.state.store
    interval = app.state.settings.resetter_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            result = await run_in_threadpool(store.resetter.reset_stalled)
        except Exception:  # a database hiccup must not kill the resetter for the rest of the server's life
            log.exception("resetter round failed; retrying in %.1fs", interval)
            continue
        if result.requeued:  # the store woke waiting executors after its commit
            log.warning("requeued stalled jobs %s", [j for j, _ in result.requeued])
        if result.failed:
            log.warning("failed jobs that stalled too many times: %s", result.failed)
        try:
            deleted = await run_in_threadpool(store.retention.delete_expired)
        except Exception:
            log.exception("deleting expired jobs failed; retrying in %.1fs", interval)
            continue
        if deleted:
            log.info("deleted %d finished jobs past their retention", deleted)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: ServerSettings, clock: Clock = utcnow, store: Store | None = None) -> FastAPI:
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
        resetter = asyncio.create_task(_run_resetter(app))
        log.info("fleet server %s ready on %s", __version__, settings.resolved_external_url)
        try:
            yield
        finally:
            app.state.metrics_registry.unregister(queue_collector)
            if listener:
                await run_in_threadpool(listener.stop)
            resetter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resetter
            if owned:
                app.state.store.close()

    app = FastAPI(title="executor-fleet", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.notifier = QueueNotifier(settings.long_poll_recheck_seconds)

    app.state.metrics_registry, request_metrics = observability.build_registry()
    app.add_middleware(observability.RequestMetricsMiddleware, metrics=request_metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc), "detail": jsonable(exc.errors())}, status_code=422)

    def _handler(status: int) -> Any:
        async def handle(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": str(exc), "detail": str(exc)}, status_code=status)

        return handle

    app.add_exception_handler(NotFound, _handler(404))
    app.add_exception_handler(Conflict, _handler(409))
    app.add_exception_handler(InvalidInput, _handler(422))

    app.router.routes.extend(executor_routes.routes)
    for module in (git_proxy, jobs_routes, observability, dashboard):
        app.include_router(module.router)
    return app


def jsonable(errors: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors, custom_encoder={Exception: str, ValueError: str})


def create_app_from_env() -> FastAPI:
    """The factory `fleet server --workers N` hands to uvicorn: each worker process reads FLEET_* itself."""
    level = os.environ.get("FLEET_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(ServerSettings())  # type: ignore[call-arg]  # required fields come from the environment
