"""Wire formats as the server accepts them: the job JSON at submit and the request bodies of the executor protocol
and job API (docs/control-plane.md, docs/protocol.md). The job JSON's fields are defined once, in
executor_agent.protocol.jobs; this module makes them strict.

Every integer is bounded to what the database stores (a signed 64-bit column), floats must be finite and strings
must be encodable (no lone surrogates), so hostile input is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from executor_agent.protocol.jobs import (
    Commands,
    DockerStepFields,
    FileContent,
    FileFields,
    SpecFields,
    StepFields,
    StepImage,
)

# \A…\Z: a full match; `$` would also accept a trailing newline.
QUEUE_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
QUEUE_NAME_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"  # the same rule as JSON Schema writes it
MAX_INT64 = 2**63 - 1
MAX_FILE_NAME_BYTES = 255  # one path component, as Linux file systems allow
MAX_FILE_PATH_BYTES = 4096  # PATH_MAX

Int64 = Annotated[int, Field(ge=-MAX_INT64, le=MAX_INT64)]
Id = Annotated[int, Field(ge=0, le=MAX_INT64)]
Count = Annotated[int, Field(ge=0, le=MAX_INT64)]
# A job id in a URL path (the job API and the dashboard): ids are 64-bit columns, so a larger number is a 422
# naming job_id, not an OverflowError in the driver.
JobId = Annotated[int, Path(ge=0, le=MAX_INT64)]


def _surrogate_free(value: Any, loc: str) -> None:
    """Lone surrogates (`"\\ud800"`) are valid JSON escapes but cannot be stored or encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(f"{loc or 'body'}: contains a lone surrogate (not valid Unicode text)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _surrogate_free(k, f"{loc}.{k!r}" if loc else repr(k))
            _surrogate_free(v, f"{loc}.{k}" if loc else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _surrogate_free(v, f"{loc}.{i}" if loc else str(i))


class _Checked(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        _surrogate_free(data, "")
        return data


class _Strict(_Checked):
    # Unknown fields are refused so a misspelt key is reported instead of silently ignored.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def check_queue_name(v: str) -> str:
    if not QUEUE_NAME_RE.match(v):
        raise ValueError(f"{v!r} is not a queue name (lowercase letters, digits, - and _; at most 64)")
    return v


QueueName = Annotated[str, Field(json_schema_extra={"pattern": QUEUE_NAME_PATTERN})]


def check_file_names(names: list[str]) -> None:
    """Names no file system can hold, and names that leave the workspace by their text alone (absolute, or `..`
    climbing above it), are refused at submit, not retried as executor errors. Where a name points through
    symlinks in the clone only the agent can judge: it fails the job."""
    seen: set[tuple[str, ...]] = set()
    for name in names:
        label = f"files[{name!r}]"
        if "\0" in name:
            raise ValueError(f"{label}: contains a NUL byte")
        if len(name.encode()) > MAX_FILE_PATH_BYTES:
            raise ValueError(f"{label}: the path is longer than {MAX_FILE_PATH_BYTES} bytes")
        if name.startswith("/"):
            raise ValueError(f"{label}: is absolute; files are written relative to the workspace")
        depth = 0
        for part in name.split("/"):
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0:
                raise ValueError(f"{label}: '..' leads outside the workspace")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if not parts:
            raise ValueError(f"{label}: names the workspace directory itself, not a file")
        if any(len(p.encode()) > MAX_FILE_NAME_BYTES for p in parts):
            raise ValueError(f"{label}: a path component is longer than {MAX_FILE_NAME_BYTES} bytes")
        if parts in seen:
            raise ValueError(f"{label}: the same file is named twice")
        seen.add(parts)
    for parts in seen:
        for n in range(1, len(parts)):
            if parts[:n] in seen:
                raise ValueError(
                    f"files[{'/'.join(parts)!r}]: {'/'.join(parts[:n])!r} is also a file, so it cannot be a directory"
                )


def _check_env(env: list[str]) -> list[str]:
    for i, item in enumerate(env):
        name, sep, _ = item.partition("=")
        if not sep or not name:
            raise ValueError(f"env[{i}] = {item!r} is not NAME=VALUE")
    return env


# The job JSON's fields come from executor_agent.protocol.jobs; what the server adds is strictness (unknown fields
# refused, image, commands and content required) and the hostile-input checks.


class DockerStep(_Strict, DockerStepFields):
    image: StepImage = Field(min_length=1)
    commands: Commands = Field(min_length=1)

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))


class CliStep(_Strict, StepFields):
    commands: Commands = Field(min_length=1)

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))


class FileEntry(_Strict, FileFields):
    content: FileContent

    @field_validator("content")
    @classmethod
    def _base64(cls, v: str) -> str:
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("is not valid base64") from exc
        return v


class JobSpec(_Strict, SpecFields[FileEntry, DockerStep, CliStep]):
    """What a submission asks to run, checked field by field and as a whole."""

    @field_validator("files")
    @classmethod
    def _file_names(cls, v: dict[str, FileEntry]) -> dict[str, FileEntry]:
        check_file_names(list(v))
        return v

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
    queue: QueueName = Field(..., description="Queue the job goes to.")

    _queue = field_validator("queue")(classmethod(lambda cls, v: check_queue_name(v)))

    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"queue"})


# --- executor protocol ------------------------------------------------------------------------------------------


class _Lenient(_Checked):
    # Executors of other versions may send fields we do not know yet; ignore them.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class DequeueRequest(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    version: str = ""
    numCPUs: Count | None = None
    memory: str | None = None
    diskSpace: str | None = None
    queues: list[str] | None = None


_DIGITS_RE = re.compile(r"\A[0-9]{1,19}\Z")


class HeartbeatRequest(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    jobIds: list[Id | str] = Field(default_factory=list)
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
            # str.isdigit() also accepts "²", which int() refuses: only ASCII digits, within the id column.
            if isinstance(item, str) and (not _DIGITS_RE.match(item) or int(item) > MAX_INT64):
                raise ValueError(f"jobIds[{i}] = {item!r} is not a job id")
        return v

    def job_ids(self) -> list[int]:
        return [int(i) for i in self.jobIds]


class JobWrite(_Lenient):
    executorName: str = Field(..., min_length=1, max_length=255)
    jobId: Id


class AddLogEntryRequest(JobWrite):
    key: str = Field(..., min_length=1, max_length=255)
    command: list[str] = Field(default_factory=list)
    startTime: datetime
    exitCode: Int64 | None = None
    out: str = ""
    durationMs: Count | None = None

    @field_validator("startTime")
    @classmethod
    def _storable(cls, v: datetime) -> datetime:
        # Stored in UTC: an offset that moves year 9999 past the end of the calendar is refused here, not in SQL.
        try:
            v.astimezone(UTC) if v.tzinfo else v
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None
        return v


class UpdateLogEntryRequest(AddLogEntryRequest):
    entryId: Id


class MarkErroredRequest(JobWrite):
    errorMessage: str = ""


# --- job API ----------------------------------------------------------------------------------------------------


class QueueCreate(_Strict):
    name: QueueName
    maxRetries: int | None = Field(None, ge=0, le=1_000_000)
    retryDelaySeconds: float | None = Field(None, ge=0, le=365 * 86400)

    _name = field_validator("name")(classmethod(lambda cls, v: check_queue_name(v)))


class RepositoryCreate(_Strict):
    name: str = Field(..., min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._/-]+$")
    url: str = Field(..., min_length=1, description="Local path of a git repository, or an http(s) git URL.")

    @field_validator("name")
    @classmethod
    def _no_dots(cls, v: str) -> str:
        if any(part in ("", ".", "..") for part in v.split("/")):
            raise ValueError(f"{v!r}: path segments must not be empty, '.' or '..'")
        return v
