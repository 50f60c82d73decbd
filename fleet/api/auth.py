"""Authentication of the three kinds of callers: executors (shared secret), jobs (job token), people (API token).

A job token's refusals are store errors (fleet.store.errors: TokenUnknown, TokenOutOfScope), so a route answers the
same 401/403 whether the store refused a write or this module refused the request before it."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from executor_agent.protocol.wire import EXECUTOR_NAME_HEADER, EXECUTOR_SCHEME, JOB_ID_HEADER
from fleet.store import Store, TokenScope
from fleet.store.errors import NotOwned, StoreError, TokenUnknown
from fleet.store.tokens import TOKEN_UNKNOWN

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
    """The job token's scope after checking it against the request (TokenUnknown: 401, TokenOutOfScope: 403);
    None when the executor's shared secret was sent, which may write about any job its executor holds."""
    value = job_token(request)
    if value is None:
        return None
    store: Store = request.app.state.store
    scope = await store.call(store.jobs.scope_of_token, value)
    if scope is None:
        raise TokenUnknown(TOKEN_UNKNOWN)
    refused = scope.refusal(job_id=request.headers.get(JOB_ID_HEADER)) or scope.refusal(
        job_id=job_id, queue=queue, repository=repository, executor_name=request.headers.get(EXECUTOR_NAME_HEADER)
    )
    if refused is not None:
        raise refused
    return scope


def check_not_owned(request: Request, refused: NotOwned) -> StoreError:
    """What to answer for a write the store refused as not owned: a token issued to another executor than the
    request's header names is a 403, as authorize_job says; anything else stays the store's 404."""
    if refused.scope is None:
        return refused
    return refused.scope.refusal(executor_name=request.headers.get(EXECUTOR_NAME_HEADER)) or refused


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
