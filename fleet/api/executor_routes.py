"""The executor protocol (CONTRACT section 3): what `executor` processes call under /.executors/."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from fleet.api.auth import JobCaller, authorize_job, require_executor
from fleet.api.notify import QueueNotifier
from fleet.schemas import (
    AddLogEntryRequest,
    DequeueRequest,
    HeartbeatRequest,
    HeartbeatResponse,
    JobWrite,
    MarkErroredRequest,
    UpdateLogEntryRequest,
)
from fleet.store import Store

router = APIRouter(prefix="/.executors")
# A waiting dequeue re-checks the store this often even without a notification (retry delays, other writers).
RECHECK_SECONDS = 1.0
MAX_PROMETHEUS_METRICS_BYTES = 256 * 1024
_NAME_RE = re.compile(r"^(.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _job_caller(request: Request, queue: str) -> JobCaller:
    return await authorize_job(request, queue=queue, job_id=None)


def _check_job(caller: JobCaller, body: JobWrite) -> None:
    if caller.scope is not None and caller.scope.job_id != body.jobId:
        raise HTTPException(403, f"job token is for job {caller.scope.job_id}, not {body.jobId}")


@router.get("/test/auth", dependencies=[Depends(require_executor)], response_class=PlainTextResponse)
async def test_auth() -> str:
    return "ok"


async def _dequeue(request: Request, queues: list[str], body: DequeueRequest, wait: float) -> Response:
    store = _store(request)
    notifier: QueueNotifier = request.app.state.notifier
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), request.app.state.settings.max_long_poll_seconds)
    while True:
        events = notifier.snapshot(queues)
        job = await store.call(store.jobs.claim, queues, body.executorName)
        if job is not None:
            return JSONResponse(job)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return Response(status_code=204)
        await notifier.wait(events, min(remaining, RECHECK_SECONDS))
        # A client that gave up must not be handed a job it will never run.
        if await request.is_disconnected():
            return Response(status_code=204)


@router.post("/queue/dequeue", dependencies=[Depends(require_executor)], responses={204: {}})
async def dequeue_multi(
    request: Request,
    body: DequeueRequest,
    wait: float = Query(0, description="Long-poll for up to N seconds."),
) -> Response:
    if not body.queues:
        raise HTTPException(422, "queues: at least one queue name is required for a multi-queue dequeue")
    return await _dequeue(request, sorted(set(body.queues)), body, wait)


@router.post("/queue/{queue}/dequeue", dependencies=[Depends(require_executor)], responses={204: {}})
async def dequeue(
    queue: str,
    request: Request,
    body: DequeueRequest,
    wait: float = Query(0, description="Long-poll for up to N seconds."),
) -> Response:
    return await _dequeue(request, [queue], body, wait)


def _hostname(executor_name: str) -> str:
    # Executor names are `<hostname>-<uuid4>`; anything else is taken as a plain host name.
    m = _NAME_RE.match(executor_name)
    return m.group(1) if m else executor_name


async def _heartbeat(request: Request, queues: list[str], body: HeartbeatRequest) -> HeartbeatResponse:
    executor = {
        "name": body.executorName,
        "hostname": _hostname(body.executorName),
        "os": body.os[:64],
        "architecture": body.architecture[:64],
        "docker_version": body.dockerVersion[:64],
        "executor_version": body.executorVersion[:64],
        "git_version": body.gitVersion[:64],
        "prometheus_metrics": body.prometheusMetrics[:MAX_PROMETHEUS_METRICS_BYTES],
    }
    store = _store(request)
    known, cancel = await store.call(store.transitions.heartbeat, queues, executor, body.job_ids())
    return HeartbeatResponse(knownIds=[str(i) for i in known], cancelIds=[str(i) for i in cancel])


@router.post("/queue/heartbeat", dependencies=[Depends(require_executor)])
async def heartbeat_multi(request: Request, body: HeartbeatRequest) -> HeartbeatResponse:
    if not body.queueNames:
        raise HTTPException(422, "queueNames: at least one queue name is required for a multi-queue heartbeat")
    return await _heartbeat(request, sorted(set(body.queueNames)), body)


@router.post("/queue/{queue}/heartbeat", dependencies=[Depends(require_executor)])
async def heartbeat(queue: str, request: Request, body: HeartbeatRequest) -> HeartbeatResponse:
    return await _heartbeat(request, [queue], body)


@router.post("/queue/{queue}/addExecutionLogEntry")
async def add_log_entry(
    queue: str, request: Request, body: AddLogEntryRequest, caller: JobCaller = Depends(_job_caller)
) -> int:
    _check_job(caller, body)
    store = _store(request)
    return await store.call(store.logs.add, queue, body.jobId, body.executorName, body.model_dump(), caller.attempt)


@router.post("/queue/{queue}/updateExecutionLogEntry", status_code=204)
async def update_log_entry(
    queue: str, request: Request, body: UpdateLogEntryRequest, caller: JobCaller = Depends(_job_caller)
) -> Response:
    _check_job(caller, body)
    store = _store(request)
    entry = body.model_dump()
    await store.call(store.logs.update, queue, body.jobId, body.executorName, body.entryId, entry, caller.attempt)
    return Response(status_code=204)


@router.post("/queue/{queue}/markComplete", status_code=204)
async def mark_complete(
    queue: str, request: Request, body: JobWrite, caller: JobCaller = Depends(_job_caller)
) -> Response:
    _check_job(caller, body)
    store = _store(request)
    await store.call(store.transitions.mark_complete, queue, body.jobId, body.executorName, caller.attempt)
    return Response(status_code=204)


@router.post("/queue/{queue}/markErrored", status_code=204)
async def mark_errored(
    queue: str, request: Request, body: MarkErroredRequest, caller: JobCaller = Depends(_job_caller)
) -> Response:
    _check_job(caller, body)
    store = _store(request)
    await store.call(
        store.transitions.mark_errored, queue, body.jobId, body.executorName, body.errorMessage, caller.attempt
    )
    return Response(status_code=204)


@router.post("/queue/{queue}/markFailed", status_code=204)
async def mark_failed(
    queue: str, request: Request, body: MarkErroredRequest, caller: JobCaller = Depends(_job_caller)
) -> Response:
    _check_job(caller, body)
    store = _store(request)
    await store.call(
        store.transitions.mark_failed, queue, body.jobId, body.executorName, body.errorMessage, caller.attempt
    )
    return Response(status_code=204)
