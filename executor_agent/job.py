"""What can stop a job early, and how a job fails; the job JSON itself is executor_agent.protocol.jobs."""

from __future__ import annotations

import threading
from enum import StrEnum


class StopReason(StrEnum):
    CANCELED = "canceled"  # someone canceled the job: reported, the server records `canceled`
    TIMEOUT = "timeout"  # EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: reported as errored
    ABANDONED = "abandoned"  # the server no longer assigns the job to us: nothing is reported
    SHUTDOWN = "shutdown"  # second signal: reported as failed


class JobFailure(Exception):
    """The job cannot succeed; `retryable` picks markErrored over markFailed."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StopSignal:
    """Set once with the first reason; everything running for the job watches it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason: StopReason | None = None

    def stop(self, reason: StopReason) -> bool:
        with self._lock:
            if self.reason is not None:
                return False
            self.reason = reason
        self._event.set()
        return True

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
