"""Wire formats: the job JSON (CONTRACT section 3) and the request bodies of the executor protocol and job API."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QUEUE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
JOB_VERSION = 2


class _Strict(BaseModel):
    # Unknown fields are refused so a misspelt key is reported instead of silently ignored.
    model_config = ConfigDict(extra="forbid")


def _check_env(env: list[str]) -> list[str]:
    for i, item in enumerate(env):
        name, sep, _ = item.partition("=")
        if not sep or not name:
            raise ValueError(f"env[{i}] = {item!r} is not NAME=VALUE")
    return env


class DockerStep(_Strict):
    key: str = Field("", description="Name of the step in logs (step.docker.<key>); defaults to its index.")
    image: str = Field(..., min_length=1, description="Image the step runs in.")
    commands: list[str] = Field(..., min_length=1, description="Commands run as one script.")
    dir: str = Field("", description="Working directory relative to the workspace.")
    env: list[str] = Field(default_factory=list, description="Environment as NAME=VALUE.")

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))


class CliStep(_Strict):
    key: str = ""
    commands: list[str] = Field(..., min_length=1)
    dir: str = ""
    env: list[str] = Field(default_factory=list)

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))


class FileEntry(_Strict):
    content: str = Field(..., description="File content, base64.")
    modifiedAt: datetime | None = None

    @field_validator("content")
    @classmethod
    def _base64(cls, v: str) -> str:
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("is not valid base64") from exc
        return v


class JobSpec(_Strict):
    """What a job runs; the job JSON minus version, id, queue and token."""

    repositoryName: str = ""
    repositoryDirectory: str = ""
    commit: str = ""
    fetchTags: bool = False
    shallowClone: bool = False
    sparseCheckout: list[str] = Field(default_factory=list)
    files: dict[str, FileEntry] = Field(default_factory=dict)
    dockerSteps: list[DockerStep] = Field(default_factory=list)
    cliSteps: list[CliStep] = Field(default_factory=list)
    redactedValues: dict[str, str] = Field(default_factory=dict)
    dockerAuthConfig: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if not self.dockerSteps and not self.cliSteps:
            raise ValueError("a job needs at least one entry in dockerSteps or cliSteps")
        if self.repositoryName and not self.commit:
            raise ValueError("commit is required when repositoryName is set (the full SHA to check out)")
        if self.commit and not self.repositoryName:
            raise ValueError("repositoryName is required when commit is set")
        return self


class JobSubmission(JobSpec):
    queue: str = Field(..., description="Queue the job goes to.")

    @field_validator("queue")
    @classmethod
    def _queue(cls, v: str) -> str:
        if not QUEUE_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a queue name (lowercase letters, digits, - and _)")
        return v

    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"queue"})


# --- executor protocol ------------------------------------------------------------------------------------------


class _Lenient(BaseModel):
    # Executors of other versions may send fields we do not know yet; ignore them.
    model_config = ConfigDict(extra="ignore")


class DequeueRequest(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    version: str = ""
    numCPUs: int | None = None
    memory: str | None = None
    diskSpace: str | None = None
    queues: list[str] | None = None


class HeartbeatRequest(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    jobIds: list[int | str] = Field(default_factory=list)
    queueNames: list[str] | None = None
    os: str = ""
    architecture: str = ""
    dockerVersion: str = ""
    executorVersion: str = ""
    gitVersion: str = ""
    srcCliVersion: str = ""
    prometheusMetrics: str = ""
    # Sent in an executor's last heartbeat when it exits cleanly, e.g. "drained: EXECUTOR_NUM_TOTAL_JOBS=1".
    exitReason: str = ""

    @field_validator("jobIds")
    @classmethod
    def _ids(cls, v: list[int | str]) -> list[int | str]:
        for i, item in enumerate(v):
            if isinstance(item, str) and not item.isdigit():
                raise ValueError(f"jobIds[{i}] = {item!r} is not a job id")
        return v

    def job_ids(self) -> list[int]:
        return [int(i) for i in self.jobIds]


class JobWrite(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    jobId: int


class AddLogEntryRequest(JobWrite):
    key: str = Field(..., min_length=1, max_length=255)
    command: list[str] = Field(default_factory=list)
    startTime: datetime
    exitCode: int | None = None
    out: str = ""
    durationMs: int | None = None


class UpdateLogEntryRequest(AddLogEntryRequest):
    entryId: int


class MarkErroredRequest(JobWrite):
    errorMessage: str = ""


# --- job API ----------------------------------------------------------------------------------------------------


class QueueCreate(_Strict):
    name: str
    maxRetries: int | None = Field(None, ge=0)
    retryDelaySeconds: float | None = Field(None, ge=0)

    _name = field_validator("name")(classmethod(lambda cls, v: JobSubmission._queue(v)))


class RepositoryCreate(_Strict):
    name: str = Field(..., min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._/-]+$")
    url: str = Field(..., min_length=1, description="Local path of a git repository, or an http(s) git URL.")

    @field_validator("name")
    @classmethod
    def _no_dots(cls, v: str) -> str:
        if any(part in ("", ".", "..") for part in v.split("/")):
            raise ValueError(f"{v!r}: path segments must not be empty, '.' or '..'")
        return v
