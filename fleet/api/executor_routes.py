"""The executor protocol (docs/protocol.md): what `executor` processes call under /.executors/.

These are plain Starlette routes, not FastAPI ones: every executor calls them several times per job, and FastAPI's
dependency solving and response validation cost more than the store work behind them. Bodies are still validated
by the pydantic models of fleet.schemas, and errors keep the shape of the rest of the API. Calls reach them through
fleet/api/executor_entry.py, ahead of the application's middleware stack and router. The paths and header
names come from executor_agent.protocol.wire, which the agent builds its requests from too.

A job token is checked by the write itself (the store's statement matches the token's hash), so a write costs one
statement; only when the store refuses does it read the token's scope, once, to say why (401, 403 or 404).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from executor_agent.protocol import wire
from fleet.api import views
from fleet.api.auth import authorize_job, check_executor_secret, check_not_owned, job_token
from fleet.api.http_protocol import client_gone, request_body
from fleet.api.notify import QueueNotifier, Signal
from fleet.schemas import (
    AddLogEntryRequest,
    DequeueRequest,
    HeartbeatRequest,
    JobWrite,
    MarkErroredRequest,
    UpdateLogEntryRequest,
)
from fleet.store import Store
from fleet.store.errors import NotFound, NotOwned

MAX_PROMETHEUS_METRICS_BYTES = 256 * 1024
_NAME_RE = re.compile(r"^(.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

M = TypeVar("M", bound=BaseModel)
W = TypeVar("W", bound=JobWrite)


class _Route(Route):
    """A route that records itself in the scope as FastAPI's routes do, so request metrics name the template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _parse(request: Request, model: type[M]) -> M:
    raw = request_body(request.scope)
    if raw is None:
        raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=raw) from None


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait):  # nan would never compare past the deadline
        error = {"type": "float_parsing", "loc": ("query", "wait"), "msg": "must be a number of seconds"}
        raise RequestValidationError([error]) from None
    return wait


async def test_auth(request: Request) -> Response:
    check_executor_secret(request)
    wanted = request.query_params.getlist("queue")  # optional: `executor validate` checks its queues exist
    if wanted:
        store = _store(request)
        known = set(await store.call(store.queues.names))
        missing = [q for q in wanted if q not in known]
        if missing:
            raise NotFound(
                f"unknown queue {missing[0]!r} (known: {', '.join(sorted(known)) or 'none'}); "
                f"create it with `fleet queues add {missing[0]}`"
            )
    return PlainTextResponse("ok")


async def _dequeue(request: Request, queues: list[str], body: DequeueRequest, wait: float) -> Response:
    """Claim a job, or park until a signal says one is ready (fleet.api.notify): one claim per signal."""
    store = _store(request)
    notifier: QueueNotifier = request.app.state.notifier
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), request.app.state.settings.max_long_poll_seconds)
    # While another poll of each of these queues sleeps without a signal, no announced job is ready in them (it
    # would have been handed to that poll): this one parks without a claim. Executors re-poll every few
    # seconds, so this keeps an idle fleet free of SQL; the shared re-check covers what nothing announced.
    skip_claim = wait > 0 and notifier.quiet(queues)
    # Parked before the first claim, so a job committed while that claim runs is signalled to this waiter.
    waiter = notifier.park(queues) if wait > 0 else None
    cause: Signal | None = None  # the signal this claim answers
    try:
        while True:
            job = None if skip_claim else await store.call(store.jobs.claim, queues, body.executorName)
            skip_claim = False
            arrived = waiter.take() if waiter is not None else None  # a signal handed during the claim
            if job is not None:
                _pass_on_unused(notifier, job.queue, cause, arrived)
                return Response(views.dequeue_view(job), media_type="application/json")
            if waiter is None:
                return Response(status_code=204)
            # Nothing ready: a job signalled to `cause` went to another claimer, so that signal is spent. A
            # signal that arrived while the claim ran may be for a job it did not see yet: claim again.
            cause = arrived or await notifier.wait(waiter, deadline - loop.time())
            if cause is None:
                return Response(status_code=204)
            # A client that gave up must not be handed a job it will never run.
            gone = client_gone(request.scope)
            if gone or (gone is None and await request.is_disconnected()):
                notifier.pass_on(cause)
                return Response(status_code=204)
            notifier.repark(waiter)
    finally:
        if waiter is not None:
            notifier.leave(waiter)


def _pass_on_unused(notifier: QueueNotifier, queue: str, *signals: Signal | None) -> None:
    """After a won claim: the signal for this job's queue is used, any other goes on to the next waiter.

    A probe always goes on: it stands for jobs nothing announced, and its chain ends at a claim that finds none.
    """
    used = False
    for signal in signals:
        if signal is None:
            continue
        if not used and not signal.probe and signal.queue == queue:
            used = True
        else:
            notifier.pass_on(signal)


async def dequeue_multi(request: Request) -> Response:
    check_executor_secret(request)
    body = await _parse(request, DequeueRequest)
    if not body.queues:
        raise HTTPException(422, "queues: at least one queue name is required for a multi-queue dequeue")
    return await _dequeue(request, sorted(set(body.queues)), body, _wait_seconds(request))


async def dequeue(request: Request) -> Response:
    check_executor_secret(request)
    body = await _parse(request, DequeueRequest)
    return await _dequeue(request, [request.path_params["queue"]], body, _wait_seconds(request))


def _hostname(executor_name: str) -> str:
    # Executor names are `<hostname>-<uuid4>`; anything else is taken as a plain host name.
    m = _NAME_RE.match(executor_name)
    return m.group(1) if m else executor_name


async def _heartbeat(request: Request, queues: list[str], body: HeartbeatRequest) -> Response:
    executor = {
        "name": body.executorName,
        "hostname": _hostname(body.executorName),
        "os": body.os[:64],
        "architecture": body.architecture[:64],
        "docker_version": body.dockerVersion[:64],
        "executor_version": body.executorVersion[:64],
        "git_version": body.gitVersion[:64],
        "prometheus_metrics": body.prometheusMetrics[:MAX_PROMETHEUS_METRICS_BYTES],
        "exit_reason": body.exitReason[:64] or None,
    }
    store = _store(request)
    known, cancel = await store.call(store.executors.heartbeat, queues, executor, body.job_ids())
    return JSONResponse({"knownIds": [str(i) for i in known], "cancelIds": [str(i) for i in cancel]})


async def heartbeat_multi(request: Request) -> Response:
    check_executor_secret(request)
    body = await _parse(request, HeartbeatRequest)
    if not body.queueNames:
        raise HTTPException(422, "queueNames: at least one queue name is required for a multi-queue heartbeat")
    return await _heartbeat(request, sorted(set(body.queueNames)), body)


async def heartbeat(request: Request) -> Response:
    check_executor_secret(request)
    body = await _parse(request, HeartbeatRequest)
    return await _heartbeat(request, [request.path_params["queue"]], body)


def _headers_agree(request: Request, body: JobWrite) -> bool:
    job_id = request.headers.get(wire.JOB_ID_HEADER)
    name = request.headers.get(wire.EXECUTOR_NAME_HEADER)
    return (job_id is None or job_id == str(body.jobId)) and (name is None or name == body.executorName)


async def _job_write(request: Request, model: type[W], write: Callable[[Store, str, W, str | None], Any]) -> Any:
    """Run one write about a job for an executor (shared secret) or a job (its token)."""
    queue: str = request.path_params["queue"]
    token = job_token(request)
    try:
        body = await _parse(request, model)
    except RequestValidationError:
        if token is not None:
            await authorize_job(request, queue=queue, job_id=None)  # a bad token is reported before a bad body
        raise
    if token is not None and not _headers_agree(request, body):
        await authorize_job(request, queue=queue, job_id=body.jobId)
    store = _store(request)
    try:
        return await store.call(write, store, queue, body, token)
    except NotOwned as exc:
        # The store read the token's scope once to refuse the write (401 and 403 come from it as store errors);
        # the executor named in the header is the route's to compare.
        raise check_not_owned(request, exc) from None


async def add_log_entry(request: Request) -> Response:
    def write(store: Store, queue: str, body: AddLogEntryRequest, token: str | None) -> int:
        return store.logs.add(queue, body.jobId, body.executorName, body.model_dump(), token=token)

    entry_id: int = await _job_write(request, AddLogEntryRequest, write)
    return Response(b"%d" % entry_id, media_type="application/json")  # what JSONResponse renders, without json.dumps


async def update_log_entry(request: Request) -> Response:
    def write(store: Store, queue: str, body: UpdateLogEntryRequest, token: str | None) -> None:
        store.logs.update(queue, body.jobId, body.executorName, body.entryId, body.model_dump(), token=token)

    await _job_write(request, UpdateLogEntryRequest, write)
    return Response(status_code=204)


async def mark_complete(request: Request) -> Response:
    def write(store: Store, queue: str, body: JobWrite, token: str | None) -> None:
        store.transitions.mark_complete(queue, body.jobId, body.executorName, token=token)

    await _job_write(request, JobWrite, write)
    return Response(status_code=204)


async def mark_errored(request: Request) -> Response:
    def write(store: Store, queue: str, body: MarkErroredRequest, token: str | None) -> None:
        store.transitions.mark_errored(queue, body.jobId, body.executorName, body.errorMessage, token=token)

    await _job_write(request, MarkErroredRequest, write)
    return Response(status_code=204)


async def mark_failed(request: Request) -> Response:
    def write(store: Store, queue: str, body: MarkErroredRequest, token: str | None) -> None:
        store.transitions.mark_failed(queue, body.jobId, body.executorName, body.errorMessage, token=token)

    await _job_write(request, MarkErroredRequest, write)
    return Response(status_code=204)


routes: list[BaseRoute] = [
    _Route(wire.TEST_AUTH_PATH, test_auth, methods=["GET"]),
    _Route(wire.multi_queue_path(wire.QueueRoute.DEQUEUE), dequeue_multi, methods=["POST"]),
    _Route(wire.multi_queue_path(wire.QueueRoute.HEARTBEAT), heartbeat_multi, methods=["POST"]),
    _Route(wire.queue_path(wire.QueueRoute.DEQUEUE), dequeue, methods=["POST"]),
    _Route(wire.queue_path(wire.QueueRoute.HEARTBEAT), heartbeat, methods=["POST"]),
    _Route(wire.queue_path(wire.JobRoute.ADD_LOG_ENTRY), add_log_entry, methods=["POST"]),
    _Route(wire.queue_path(wire.JobRoute.UPDATE_LOG_ENTRY), update_log_entry, methods=["POST"]),
    _Route(wire.queue_path(wire.JobRoute.MARK_COMPLETE), mark_complete, methods=["POST"]),
    _Route(wire.queue_path(wire.JobRoute.MARK_ERRORED), mark_errored, methods=["POST"]),
    _Route(wire.queue_path(wire.JobRoute.MARK_FAILED), mark_failed, methods=["POST"]),
]
