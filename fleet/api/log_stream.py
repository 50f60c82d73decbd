"""A job's logs as server-sent events: what `fleet jobs logs --follow` and the dashboard's job page read.

`GET /api/v1/jobs/{id}/logs` with `Accept: text/event-stream` (or `?follow=1`) answers with a stream of events
(docs/control-plane.md, "Following a job"):

- `job`: the job record, first and whenever its state changes;
- `entry`: a log entry that is new or has grown: its fields and the output appended since the last event about it
  (`offset` = where `out` starts in the entry's whole output; 0 with the whole output if it was rewritten);
- `end`: the job finished (state, failureMessage); the stream ends after it.

The server reads the store twice a second while a client follows: a follower costs two small reads, and a log line
reaches the reader within a second of the executor's flush (which itself flushes once a second).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from fleet.api import views
from fleet.states import TERMINAL
from fleet.store import Store

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def wants_stream(request: Request) -> bool:
    follow = request.query_params.get("follow", "").lower() in ("1", "true", "yes")
    return follow or "text/event-stream" in request.headers.get("accept", "")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EntryDiff:
    """Remembers how much of each entry a follower has seen, to send only what is new."""

    def __init__(self) -> None:
        self.sent: dict[int, tuple[str, Any, Any]] = {}  # id -> (output sent, exitCode, durationMs)

    def changes(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for e in entries:
            seen = self.sent.get(e["id"])
            if seen is not None and seen == (e["out"], e["exitCode"], e["durationMs"]):
                continue
            offset = len(seen[0]) if seen is not None and e["out"].startswith(seen[0]) else 0
            self.sent[e["id"]] = (e["out"], e["exitCode"], e["durationMs"])
            out.append({**e, "offset": offset, "out": e["out"][offset:]})
        return out


async def _events(request: Request, store: Store, job_id: int, job: dict[str, Any]) -> AsyncIterator[str]:
    diff = EntryDiff()
    yield _event("job", job)
    state = job["state"]
    quiet = 0.0
    while True:
        finished = job["state"] in TERMINAL
        entries = views.log_entry_views(await store.call(store.logs.for_job, job_id))
        changed = diff.changes(entries)
        for entry in changed:
            yield _event("entry", entry)
        if finished:
            yield _event("end", {"id": job_id, "state": job["state"], "failureMessage": job["failureMessage"]})
            return
        quiet = 0.0 if changed else quiet + POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"  # a comment line: proxies do not time the stream out
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        # The job is read before its entries, so entries written just before it finished are in the last read.
        job = views.job_view(await store.call(store.jobs.get, job_id))
        if job["state"] != state:
            state = job["state"]
            yield _event("job", job)


def stream_response(request: Request, store: Store, job_id: int, job: dict[str, Any]) -> StreamingResponse:
    return StreamingResponse(
        _events(request, store, job_id, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
