"""The server-rendered dashboard: queues, executors with their health, jobs, and one live page per job.

Sign-in makes a signed session (fleet/api/session.py); the job page follows the job through the log stream of
fleet/api/log_stream.py; cancel and retry are form posts that need the session's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from executor_agent.protocol.durations import MISSING, human_duration
from fleet import __version__
from fleet.api import fleet_view, session, views
from fleet.api.auth import api_token_ok, tokens_equal
from fleet.api.log_stream import stream_response
from fleet.schemas import MAX_INT64, JobId
from fleet.states import TERMINAL, JobState
from fleet.store import Store
from fleet.store.errors import Conflict, NotFound

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
PAGE_SIZE = 25


def _utc(value: str | None) -> str:
    """ISO timestamps as `2026-01-01 12:00:00 UTC`."""
    if not value:
        return MISSING
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: str | None, now: datetime) -> str:
    if not value:
        return MISSING
    return f"{human_duration((now - datetime.fromisoformat(value)).total_seconds())} ago"


templates.env.filters["utc"] = _utc
templates.env.filters["duration"] = human_duration
templates.env.globals["MISSING"] = MISSING


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _session(request: Request) -> session.Session | None:
    return session.verify(request.app.state.settings.api_token, request.cookies.get(session.SESSION_COOKIE))


def _signed_in(request: Request) -> bool:
    return _session(request) is not None or api_token_ok(request)


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    now = _store(request).db.clock()
    current = _session(request)
    base = {
        "version": __version__,
        "now": now,
        "ago": lambda value: _ago(value, now),
        "csrf_token": current.csrf_token if current else "",
        "signed_in": current is not None,
        "refresh": 0,
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _login(request: Request, error: str = "", next_path: str | None = None, status_code: int = 401) -> Response:
    target = next_path or request.url.path
    context = {"error": error, "next": target, "signed_in": False}
    return _page(request, "login.html", context, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    if not _signed_in(request):
        return _login(request)
    store = _store(request)
    executors = fleet_view.executor_records(store, request.app.state.settings.heartbeat_interval_seconds)
    return _page(
        request,
        "index.html",
        {
            "queues": fleet_view.queue_records(store, executors),
            "active": [e for e in executors if e["active"]],
            "inactive": [e for e in executors if not e["active"]],
            "jobs": views.job_views(store.jobs.list(limit=10)),
            "refresh": 10,
        },
    )


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    queue: str = "",
    state: str = "",
    before: int | None = Query(None, ge=1, le=MAX_INT64),
) -> Response:
    if not _signed_in(request):
        return _login(request)
    store = _store(request)
    queues = store.queues.names()
    problem = ""
    if queue and queue not in queues:
        problem, queue = f"queue {queue!r} does not exist", ""
    if state and state not in {s.value for s in JobState}:
        problem, state = f"state {state!r} does not exist", ""
    listed = store.jobs.list(queue=queue or None, state=state or None, limit=PAGE_SIZE + 1, before=before)
    rows = views.job_views(listed)
    return _page(
        request,
        "jobs.html",
        {
            "jobs": rows[:PAGE_SIZE],
            "older": rows[PAGE_SIZE - 1]["id"] if len(rows) > PAGE_SIZE else None,
            "before": before,
            "queue": queue,
            "state": state,
            "queues": queues,
            "states": [s.value for s in JobState],
            "problem": problem,
        },
        status_code=404 if problem else 200,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: JobId, done: str = "") -> Response:
    if not _signed_in(request):
        return _login(request)
    store = _store(request)
    try:
        job = views.job_view(store.jobs.get(job_id))
    except NotFound as exc:
        return _page(request, "message.html", {"title": "Not found", "message": str(exc)}, status_code=404)
    entries = views.log_entry_views(store.logs.for_job(job_id))
    return _page(
        request, "job.html", {"job": job, "entries": entries, "finished": job["state"] in TERMINAL, "done": done}
    )


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, job_id: JobId) -> Response:
    """The log stream for the job page, authenticated by the dashboard session."""
    if not _signed_in(request):
        return Response("sign in first", status_code=401)
    store = _store(request)
    try:
        job = views.job_view(store.jobs.get(job_id))
    except NotFound as exc:
        return Response(str(exc), status_code=404)
    return stream_response(request, store, job_id, job)


def _refused(request: Request, message: str, status_code: int) -> Response:
    return _page(request, "message.html", {"title": "Refused", "message": message}, status_code=status_code)


def _job_action(request: Request, job_id: JobId, csrf_token: str, action: str) -> Response:
    current = _session(request)
    if current is None:
        return _login(request, "sign in again to do that", next_path=f"/jobs/{job_id}")
    if not session.csrf_ok(current, csrf_token):
        return _refused(request, "missing or wrong CSRF token: reload the job page and try again", 403)
    store = _store(request)
    try:
        queue = store.jobs.cancel(job_id).queue if action == "cancel" else store.transitions.retry(job_id).queue
    except (NotFound, Conflict) as exc:
        return _refused(request, str(exc), 404 if isinstance(exc, NotFound) else 409)
    request.app.state.notifier.notify([queue])
    return RedirectResponse(f"/jobs/{job_id}?done={action}", status_code=303)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: JobId, csrf_token: str = Form("")) -> Response:
    return _job_action(request, job_id, csrf_token, "cancel")


@router.post("/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: JobId, csrf_token: str = Form("")) -> Response:
    return _job_action(request, job_id, csrf_token, "retry")


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
    if not token or not tokens_equal(token, request.app.state.settings.api_token):
        return _login(request, "wrong token", next_path=next)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        session.SESSION_COOKIE,
        session.issue(request.app.state.settings.api_token),
        max_age=session.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    # CSRF-checked too, or another site could sign operators out.
    current = _session(request)
    if current is not None and not session.csrf_ok(current, csrf_token):
        return _refused(request, "missing or wrong CSRF token: reload the page and try again", 403)
    response = _login(request, "signed out", next_path="/", status_code=200)
    response.delete_cookie(session.SESSION_COOKIE, httponly=True, samesite="strict")
    return response
