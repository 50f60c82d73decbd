"""The job API (docs/control-plane.md) under /api/v1, for people and scripts holding FLEET_API_TOKEN."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.routing import Route

from fleet.api import fleet_view, views
from fleet.api.auth import api_token_ok, require_api
from fleet.api.executor_entry import FullStack
from fleet.api.log_stream import stream_response, wants_stream
from fleet.schemas import MAX_INT64, JobId, JobSubmission, QueueCreate, RepositoryCreate
from fleet.states import JobState
from fleet.store import Store
from fleet.store.errors import NotFound

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api)])


# The routes that executors' pickup latency and every publisher round wait on are async and call the store through
# Store.call (inline on SQLite, the store's threads on PostgreSQL): a sync route would hop to anyio's thread pool,
# and after an idle spell each such hop costs a few tenths of a millisecond of thread wake-up.
def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _submit(request: Request, body: JobSubmission) -> dict[str, Any]:
    store = _store(request)
    row = await store.call(store.jobs.submit, body)  # the store hands the job's signal to a parked dequeue
    # One turn of the loop first: that dequeue claims and replies before this reply is built (pickup latency).
    await asyncio.sleep(0)
    return views.job_view(row)


@router.post("/jobs", status_code=201)
async def submit_job(request: Request, body: JobSubmission) -> dict[str, Any]:
    return await _submit(request, body)


async def _submit_entry(request: Request) -> Response | FullStack:
    """submit_job ahead of FastAPI's layers (fleet/api/executor_entry.py), for what the pickup of a parked executor
    waits on. It takes only a call it answers as submit_job would: the API token right, a JSON body that parses
    and validates as FastAPI does it (json.loads, then the model in Python mode); the rest goes back, body and
    all, to the full stack, which refuses it as before."""
    if not api_token_ok(request) or request.headers.get("content-type") != "application/json":
        return FullStack(await request.body())
    raw = await request.body()
    try:
        body = JobSubmission.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return FullStack(raw)
    return JSONResponse(await _submit(request, body), status_code=201)


submit_entry = Route("/api/v1/jobs", _submit_entry, methods=["POST"])


@router.get("/jobs")
def list_jobs(
    request: Request,
    queue: str | None = None,
    state: JobState | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(
        None, ge=1, le=MAX_INT64, description="Only jobs with a smaller id: the next page of a listing."
    ),
) -> dict[str, Any]:
    store = _store(request)
    if queue and queue not in store.queues.names():
        # An empty list would read as "no jobs"; a misspelt queue name deserves to be told.
        known = ", ".join(store.queues.names()) or "none"
        raise NotFound(f"queue {queue!r} does not exist (known: {known})")
    return {"jobs": views.job_views(store.jobs.list(queue=queue, state=state, limit=limit, before=before))}


@router.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    store = _store(request)
    return views.job_view(await store.call(store.jobs.get, job_id))


@router.get("/jobs/{job_id}/logs", response_model=None)
def get_logs(request: Request, job_id: JobId) -> dict[str, Any] | Response:
    """The job's log entries; with `Accept: text/event-stream` or `?follow=1`, a stream until the job ends."""
    store = _store(request)
    job = store.jobs.get(job_id)
    if wants_stream(request):
        return stream_response(request, store, job_id, views.job_view(job))
    return {"jobId": job_id, "entries": views.log_entry_views(store.logs.for_job(job_id))}


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: JobId) -> dict[str, Any]:
    store = _store(request)
    return views.job_view(await store.call(store.jobs.cancel, job_id))


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Queue a finished (completed, failed or canceled) job again as a new attempt; its logs are kept."""
    store = _store(request)
    return views.job_view(await store.call(store.transitions.retry, job_id))  # the store wakes waiting executors


@router.get("/queues")
async def list_queues(request: Request) -> dict[str, Any]:
    store = _store(request)
    now = store.db.clock()
    return {"queues": [views.queue_view(q, now) for q in await store.call(store.queues.stats)]}


@router.post("/queues", status_code=201)
def add_queue(request: Request, body: QueueCreate) -> dict[str, Any]:
    policy = _store(request).queues.add(body.name, body.maxRetries, body.retryDelaySeconds)
    return views.queue_policy_view(policy.name, policy.max_retries, policy.retry_delay_seconds)


def executor_records(request: Request) -> list[dict[str, Any]]:
    return fleet_view.executor_records(_store(request), request.app.state.settings.heartbeat_interval_seconds)


@router.get("/executors")
def list_executors(request: Request) -> dict[str, Any]:
    return {"executors": executor_records(request)}


@router.post("/repositories", status_code=201)
def add_repository(request: Request, body: RepositoryCreate) -> dict[str, Any]:
    from fleet.api.git_proxy import check_repository_location

    problem = check_repository_location(body.url)
    if problem:
        raise RequestValidationError([{"loc": ("body", "url"), "msg": problem, "type": "value_error"}])
    return views.registered_repository_view(_store(request).repos.add(body.name, body.url))


@router.get("/repositories")
def list_repositories(request: Request) -> dict[str, Any]:
    return {"repositories": [views.repository_view(r) for r in _store(request).repos.list()]}
