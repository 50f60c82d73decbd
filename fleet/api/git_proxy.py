"""Git smart-HTTP proxy: executors clone the repositories the server knows, with a job token scoped to one repo.

Local repositories are served by `git http-backend` (CGI), which speaks protocol v0 and v2 and handles gzip'd
requests; remote ones (http/https URLs) are forwarded. Only upload-pack (fetch/clone) is offered: pushes are refused.
Fetching a commit by SHA is allowed (uploadpack.allowAnySHA1InWant), since jobs pin the exact commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from executor_agent.protocol.wire import GIT_INFO_REFS, GIT_PREFIX, GIT_SERVICE, GIT_UPLOAD_PACK
from fleet.api.auth import authorize_job
from fleet.store import Store

router = APIRouter(prefix=GIT_PREFIX)
CHUNK = 64 * 1024


def check_repository_location(url: str) -> str | None:
    """Why the server could not serve this location, or None when it can."""
    if url.startswith(("http://", "https://")):
        return None
    path = Path(url)
    if not path.is_absolute():
        return f"{url!r} must be an absolute path or an http(s) URL"
    if not (path / "HEAD").is_file() and not (path / ".git").exists():
        return f"{url!r} is not a git repository (no .git or HEAD); create it with `git init`"
    return None


async def _authorize(request: Request, repo: str) -> str:
    await authorize_job(request, queue=None, job_id=None, repository=repo)
    store: Store = request.app.state.store
    location = await store.call(store.repos.get, repo)
    if location is None:
        raise HTTPException(404, f"repository {repo!r} is not registered; `fleet repos add {repo} PATH_OR_URL`")
    return location


@router.get("/{repo:path}" + GIT_INFO_REFS)
async def info_refs(repo: str, request: Request) -> Response:
    if request.query_params.get("service") != GIT_SERVICE:
        raise HTTPException(403, "only git-upload-pack (fetch and clone) is served")
    location = await _authorize(request, repo)
    if location.startswith(("http://", "https://")):
        return await _forward(request, location.rstrip("/") + GIT_INFO_REFS, "GET")
    return await _http_backend(request, location, GIT_INFO_REFS, b"")


@router.post("/{repo:path}" + GIT_UPLOAD_PACK)
async def upload_pack(repo: str, request: Request) -> Response:
    location = await _authorize(request, repo)
    body = await request.body()
    if location.startswith(("http://", "https://")):
        return await _forward(request, location.rstrip("/") + GIT_UPLOAD_PACK, "POST", body)
    return await _http_backend(request, location, GIT_UPLOAD_PACK, body)


async def _http_backend(request: Request, repo_path: str, suffix: str, body: bytes) -> Response:
    git = shutil.which("git")
    if git is None:
        raise HTTPException(500, "git is not installed on the fleet server")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": "/",
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": str(Path(repo_path).resolve()) + suffix,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": request.client.host if request.client else "",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "uploadpack.allowAnySHA1InWant",
        "GIT_CONFIG_VALUE_0": "true",
    }
    if enc := request.headers.get("content-encoding"):
        env["HTTP_CONTENT_ENCODING"] = enc
    if proto := request.headers.get("git-protocol"):
        env["GIT_PROTOCOL"] = proto
    proc = await asyncio.create_subprocess_exec(
        git,
        "http-backend",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    # A GET (info/refs) has no body, and http-backend reads nothing for it: it may answer and exit before a write
    # here, which then fails on the closed pipe (a 500 seen on a busy host). So nothing is written without a body,
    # and a backend that stops reading one early is left to its exit status and stderr below.
    if body:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(body)
            await proc.stdin.drain()
    proc.stdin.close()
    status, headers = 200, {}
    while True:
        line = (await proc.stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()
    if status >= 400:
        err = (await proc.stderr.read()).decode(errors="replace").strip()
        await proc.wait()
        raise HTTPException(status, f"git http-backend: {err or 'request refused'}")

    async def stream() -> AsyncIterator[bytes]:
        try:
            while chunk := await proc.stdout.read(CHUNK):  # type: ignore[union-attr]
                yield chunk
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()

    return StreamingResponse(stream(), status_code=status, headers=headers)


async def _forward(request: Request, url: str, method: str, body: bytes = b"") -> Response:
    keep = ("content-type", "content-encoding", "git-protocol", "accept")
    headers = {k: v for k, v in request.headers.items() if k.lower() in keep}
    client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=600.0))
    upstream = await client.send(
        client.build_request(method, url, params=dict(request.query_params), headers=headers, content=body),
        stream=True,
    )
    if upstream.status_code >= 400:
        await upstream.aclose()
        await client.aclose()
        raise HTTPException(502, f"upstream {url} answered {upstream.status_code}")

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    passthrough = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "cache-control")}
    return StreamingResponse(stream(), status_code=upstream.status_code, headers=passthrough)
