"""The camelCase JSON of the API, built in this one module from what the store returns (rows and dataclasses).

The job API, the executor protocol's dequeue reply, the log stream, the dashboard's templates and /metrics all
read these shapes (docs/control-plane.md, docs/protocol.md): a field is renamed or added here, nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Row

from executor_agent.protocol.jobs import JOB_VERSION
from fleet.store.jobs import Claim
from fleet.store.queues import QueueStats


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_view(row: Row[Any]) -> dict[str, Any]:
    """The job as the job API shows it (never the token)."""
    return {
        "id": row.id,
        "queue": row.queue,
        "state": row.state,
        "createdAt": iso(row.created_at),
        "queuedAt": iso(row.queued_at),
        "processAfter": iso(row.process_after),
        "startedAt": iso(row.started_at),
        "finishedAt": iso(row.finished_at),
        "lastHeartbeatAt": iso(row.last_heartbeat_at),
        "executorName": row.executor_name,
        "attempt": row.attempt,
        "numResets": row.num_resets,
        "numFailures": row.num_failures,
        "failureMessage": row.failure_message,
        "cancelRequested": row.cancel_requested,
        "spec": row.spec,
    }


def job_views(rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
    return [job_view(r) for r in rows]


def dequeue_view(claim: Claim) -> bytes:
    """The dequeue reply: the job as the executor runs it, with its token (the only place the plain token is).

    Already JSON: the claim returns the job's spec as the JSON object the store wrote, and its members follow
    the reply's own ones as they are, instead of being parsed and encoded again for every job handed out
    (about 4 % of the server's CPU per protocol cycle; README, "Figures")."""
    head = to_json({"version": JOB_VERSION, "id": claim.id, "queue": claim.queue, "token": claim.token})
    spec = claim.spec.strip()
    return head if spec == "{}" else head[:-1] + b"," + spec[1:].encode()


def log_entry_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "attempt": row.attempt,
        "key": row.key,
        "command": row.command,
        "startTime": row.start_time.isoformat(),
        "exitCode": row.exit_code,
        "durationMs": row.duration_ms,
        "out": row.out,
    }


def log_entry_views(rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
    return [log_entry_view(r) for r in rows]


def queue_view(q: QueueStats, now: datetime) -> dict[str, Any]:
    age = (now - q.oldest_queued_at).total_seconds() if q.oldest_queued_at else None
    return {
        "name": q.name,
        "queued": q.queued,
        "processing": q.processing,
        "errored": q.errored,
        "completed": q.completed,
        "failed": q.failed,
        "canceled": q.canceled,
        "size": q.size,
        "oldestQueuedAgeSeconds": round(age, 3) if age is not None else None,
    }


def served_queue_view(
    q: QueueStats, now: datetime, active_executors: int, unserved_seconds: float | None
) -> dict[str, Any]:
    """A queue with who serves it (the dashboard, /metrics): fleet_view derives the two numbers."""
    return {**queue_view(q, now), "activeExecutors": active_executors, "unservedSeconds": unserved_seconds}


def queue_policy_view(name: str, max_retries: int, retry_delay_seconds: float) -> dict[str, Any]:
    return {"name": name, "maxRetries": max_retries, "retryDelaySeconds": retry_delay_seconds}


def executor_view(
    r: Row[Any], now: datetime, health: str, healthy: bool, active: bool, running_job_ids: list[int]
) -> dict[str, Any]:
    """An executor with its health (fleet_view derives it) and the jobs it holds now."""
    return {
        "name": r.name,
        "hostname": r.hostname,
        "queues": r.queue_names,
        "os": r.os,
        "architecture": r.architecture,
        "dockerVersion": r.docker_version,
        "executorVersion": r.executor_version,
        "gitVersion": r.git_version,
        "firstSeenAt": r.first_seen_at.isoformat(),
        "lastSeenAt": r.last_seen_at.isoformat(),
        "lastSeenSecondsAgo": round((now - r.last_seen_at).total_seconds(), 1),
        "healthy": healthy,
        "health": health,
        "active": active,
        "exitReason": r.exit_reason,
        "runningJobIds": running_job_ids,
    }


def repository_view(row: Row[Any]) -> dict[str, Any]:
    return {"name": row.name, "url": row.url, "createdAt": row.created_at.isoformat()}


def registered_repository_view(row: Row[Any]) -> dict[str, Any]:
    """The reply to a registration: the name and location only, as it always was."""
    return {"name": row.name, "url": row.url}
