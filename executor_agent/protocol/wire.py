"""Names both ends of the executor protocol must spell the same (docs/protocol.md): headers, route paths and the
outcomes of a job. The agent builds its URLs and the server registers its routes from the same functions, so a
renamed route cannot leave one side behind."""

from __future__ import annotations

from enum import StrEnum

JOB_ID_HEADER = "X-Sourcegraph-Job-ID"
EXECUTOR_NAME_HEADER = "X-Sourcegraph-Executor-Name"
EXECUTOR_SCHEME = "token-executor"  # `Authorization: token-executor <shared secret>`

PREFIX = "/.executors"
TEST_AUTH_PATH = f"{PREFIX}/test/auth"
GIT_PREFIX = f"{PREFIX}/git"
# What follows /.executors/git/<repo>: the two requests of git's smart HTTP fetch.
GIT_INFO_REFS = "/info/refs"
GIT_UPLOAD_PACK = "/git-upload-pack"
GIT_SERVICE = "git-upload-pack"  # the only service offered: fetches, never pushes
# The path parameter as the server's route templates write it; the default of queue_path().
QUEUE_PARAM = "{queue}"


class QueueRoute(StrEnum):
    """Routes called with the shared secret, for one queue or (without a queue in the path) several."""

    DEQUEUE = "dequeue"
    HEARTBEAT = "heartbeat"


class JobRoute(StrEnum):
    """Writes about one job, under the job's queue."""

    ADD_LOG_ENTRY = "addExecutionLogEntry"
    UPDATE_LOG_ENTRY = "updateExecutionLogEntry"
    MARK_COMPLETE = "markComplete"
    MARK_ERRORED = "markErrored"
    MARK_FAILED = "markFailed"


def queue_path(route: QueueRoute | JobRoute, queue: str = QUEUE_PARAM) -> str:
    """`/.executors/queue/<queue>/<route>`; with the default queue, the server's route template."""
    return f"{PREFIX}/queue/{queue}/{route}"


def multi_queue_path(route: QueueRoute) -> str:
    """`/.executors/queue/<route>`: the several-queue form, whose queues travel in the body."""
    return f"{PREFIX}/queue/{route}"


def git_path(repo: str) -> str:
    """Where the git proxy serves a repository; `repo` must already be URL-quoted (slashes kept)."""
    return f"{GIT_PREFIX}/{repo}"


class Outcome(StrEnum):
    """How one job ended for the agent: what it reported, or why nothing was reported."""

    COMPLETED = "completed"  # markComplete
    ERRORED = "errored"  # markErrored: the server retries the job while its retries last
    FAILED = "failed"  # markFailed: never retried
    CANCELED = "canceled"  # reported with markFailed; the server records `canceled` for a pending cancel
    ABANDONED = "abandoned"  # the job is no longer ours: nothing reported, or the report refused
    UNDELIVERED = "undelivered"  # the report never reached the server (hard stop, refusal); it requeues the job
