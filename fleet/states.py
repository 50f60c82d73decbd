"""Job states, declared once. Only the store moves a job from one state to another, by the rules of
fleet/store/lifecycle.py."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ERRORED = "errored"  # retryable: dequeued again after the retry delay
    FAILED = "failed"
    CANCELED = "canceled"


# States a job can be handed out from.
DEQUEUEABLE = (JobState.QUEUED, JobState.ERRORED)
# States that count toward a queue's size, which is what the autoscalers read.
SIZE_STATES = (JobState.QUEUED, JobState.ERRORED, JobState.PROCESSING)
TERMINAL = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)
