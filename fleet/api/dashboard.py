"""The server-rendered dashboard: queues, executors with their health, recent jobs, and one page per job."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from fleet import __version__
from fleet.api.auth import API_COOKIE, api_token_ok, tokens_equal
from fleet.api.jobs_routes import JobId, executor_records
from fleet.store import Store
from fleet.store.errors import NotFound

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


def _short_time(value: str | None) -> str:
    """ISO timestamps as `2026-01-01 12:00:00` (UTC); the full value stays in the title attribute."""
    return value[:19].replace("T", " ") if value else "–"


templates.env.filters["short_time"] = _short_time


def _login(request: Request, error: str = "") -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"error": error, "next": request.url.path, "version": __version__, "refresh": 0},
        status_code=401,
    )


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    if not api_token_ok(request):
        return _login(request)
    store: Store = request.app.state.store
    now = store.db.clock()
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "queues": [q.to_json(now) for q in store.queues.stats()],
            "executors": executor_records(request),
            "jobs": store.jobs.list(limit=50),
            "version": __version__,
        },
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: JobId) -> Response:
    if not api_token_ok(request):
        return _login(request)
    store: Store = request.app.state.store
    try:
        job = store.jobs.get(job_id)
    except NotFound as exc:
        return HTMLResponse(f"<h1>Not found</h1><p>{exc}</p>", status_code=404)
    return templates.TemplateResponse(
        request, "job.html", {"job": job, "entries": store.logs.for_job(job_id), "version": __version__}
    )


@router.post("/login")
def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
    if not token or not tokens_equal(token, request.app.state.settings.api_token):
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": "wrong token", "next": next, "version": __version__, "refresh": 0},
            status_code=401,
        )
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(API_COOKIE, token, httponly=True, samesite="strict")
    return response
