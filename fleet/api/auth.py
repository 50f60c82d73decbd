"""Authentication of the three kinds of callers: executors (shared secret), jobs (job token), people (API token)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from executor_agent.protocol.wire import EXECUTOR_NAME_HEADER, EXECUTOR_SCHEME, JOB_ID_HEADER
from fleet.store import Store, TokenScope

API_COOKIE = "fleet_api_token"


def _unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": scheme})


def _split(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.strip(), value.strip()


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time, so the time a wrong token takes to refuse says nothing about how much of it was right."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def check_executor_secret(request: Request) -> None:
    scheme, value = _split(request)
    if scheme != EXECUTOR_SCHEME:
        raise _unauthorized(f"missing `Authorization: {EXECUTOR_SCHEME} <secret>` header", EXECUTOR_SCHEME)
    if not tokens_equal(value, request.app.state.settings.executors_access_token):
        raise _unauthorized(
            "executor secret rejected: EXECUTOR_FRONTEND_PASSWORD must equal FLEET_EXECUTORS_ACCESS_TOKEN",
            EXECUTOR_SCHEME,
        )


def job_token(request: Request) -> str | None:
    """The job token of a write about a job; None when the executor's shared secret was sent instead."""
    scheme, value = _split(request)
    if scheme == EXECUTOR_SCHEME:
        check_executor_secret(request)
        return None
    if scheme.lower() != "bearer" or not value:
        raise _unauthorized("missing `Authorization: Bearer <job token>` or `token-executor <secret>` header")
    return value


async def authorize_job(
    request: Request, *, queue: str | None, job_id: int | None, repository: str | None = None
) -> TokenScope | None:
    """The job token's scope after checking it against the request (401 unknown, 403 out of scope); None when
    the executor's shared secret was sent, which may write about any job its executor holds."""
    value = job_token(request)
    if value is None:
        return None
    store: Store = request.app.state.store
    scope = await store.call(store.jobs.scope_of_token, value)
    if scope is None:
        raise _unauthorized("job token unknown or revoked (the job finished or was requeued)")
    header_id = request.headers.get(JOB_ID_HEADER)
    if header_id is not None and header_id != str(scope.job_id):
        raise HTTPException(403, f"job token is for job {scope.job_id}, not {header_id}")
    if job_id is not None and job_id != scope.job_id:
        raise HTTPException(403, f"job token is for job {scope.job_id}, not {job_id}")
    if queue is not None and queue != scope.queue:
        raise HTTPException(403, f"job token is for queue {scope.queue!r}, not {queue!r}")
    if repository is not None and repository != scope.repository_name:
        raise HTTPException(403, f"job token does not grant access to repository {repository!r}")
    name = request.headers.get(EXECUTOR_NAME_HEADER)
    if name is not None and scope.executor_name is not None and name != scope.executor_name:
        raise HTTPException(403, "job token was issued to another executor")
    return scope


def api_token_ok(request: Request) -> bool:
    expected = request.app.state.settings.api_token
    scheme, value = _split(request)
    if scheme.lower() == "bearer" and value:
        return tokens_equal(value, expected)
    cookie = request.cookies.get(API_COOKIE)
    return bool(cookie) and tokens_equal(cookie or "", expected)


async def require_api(request: Request) -> None:
    if not api_token_ok(request):
        raise _unauthorized("missing or wrong `Authorization: Bearer <FLEET_API_TOKEN>` header")
