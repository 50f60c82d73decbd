"""A job as the server hands it out (job JSON version 2), and what can stop it early."""

from __future__ import annotations

import threading
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    # Newer servers may add fields; an older agent ignores what it does not know.
    model_config = ConfigDict(extra="ignore")


class FileEntry(_Lenient):
    content: str = ""
    modifiedAt: datetime | None = None


class Step(_Lenient):
    key: str = ""
    image: str = ""
    commands: list[str] = Field(default_factory=list)
    dir: str = ""
    env: list[str] = Field(default_factory=list)


class JobSpec(_Lenient):
    version: int = 2
    id: int
    queue: str = ""
    token: str = ""
    repositoryName: str = ""
    repositoryDirectory: str = ""
    commit: str = ""
    fetchTags: bool = False
    shallowClone: bool = False
    sparseCheckout: list[str] = Field(default_factory=list)
    files: dict[str, FileEntry] = Field(default_factory=dict)
    dockerSteps: list[Step] = Field(default_factory=list)
    cliSteps: list[Step] = Field(default_factory=list)
    redactedValues: dict[str, str] = Field(default_factory=dict)
    dockerAuthConfig: dict[str, Any] = Field(default_factory=dict)


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
