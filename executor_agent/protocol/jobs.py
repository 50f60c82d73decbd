"""The job JSON, version 2 (docs/protocol.md, "The job JSON"): every field and its meaning, defined once.

The field classes (`FileFields`, `StepFields`, `DockerStepFields`, `SpecFields`) hold the names, types, defaults and
descriptions. Two variants derive from them:

- lenient, here (`FileEntry`, `Step`, `JobSpec`): what the agent reads from a dequeue. A newer server may add
  fields; an older agent ignores what it does not know, and a missing field takes its default.
- strict, in fleet/schemas.py: what the server accepts at submit. Unknown fields are refused, `image`,
  `commands` and `content` are required, and hostile input is checked there (that is the server's concern only).

`SpecFields` is generic in its file and step models so that each variant nests its own kind of file and step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JOB_VERSION = 2

# The descriptions travel with the types, so a variant that makes a field required keeps its documentation.
StepKey = Annotated[str, Field(description="Name of the step in logs (step.docker.<key>); defaults to its index.")]
StepImage = Annotated[str, Field(description="Image the step runs in.")]
Commands = Annotated[list[str], Field(description="Commands run as one script.")]
FileContent = Annotated[str, Field(description="File content, base64.")]


class FileFields(BaseModel):
    content: FileContent = ""
    modifiedAt: datetime | None = None


class _StepKey(BaseModel):
    key: StepKey = ""


class _StepImage(BaseModel):
    image: StepImage = ""


class _StepRun(BaseModel):
    commands: Commands = Field(default_factory=list)
    dir: str = Field(default="", description="Working directory relative to the workspace.")
    env: list[str] = Field(default_factory=list, description="Environment as NAME=VALUE.")


# Assembled from parts so the fields keep the job JSON's order (key, image, commands, dir, env): pydantic takes
# the fields of the bases last to first, and that order is the order of the JSON and of validation errors.
class StepFields(_StepRun, _StepKey):
    """A CLI step: no image, it runs in the executor's own tool set."""


class DockerStepFields(_StepRun, _StepImage, _StepKey):
    """A docker step: the CLI step's fields plus the image it runs in."""


FileT = TypeVar("FileT", bound=FileFields)
DockerStepT = TypeVar("DockerStepT", bound=BaseModel)
CliStepT = TypeVar("CliStepT", bound=BaseModel)


class SpecFields(BaseModel, Generic[FileT, DockerStepT, CliStepT]):
    """What a job runs; the job JSON minus version, id, queue and token."""

    repositoryName: str = Field(
        default="", description="The repository as the server names it; with commit, or neither."
    )
    repositoryDirectory: str = Field(default="", description='Where in the workspace to clone it ("" = the workspace).')
    commit: str = Field(default="", description="The full commit to check out.")
    fetchTags: bool = Field(default=False, description="Fetch the tags too.")
    shallowClone: bool = Field(default=False, description="Fetch one commit deep.")
    sparseCheckout: list[str] = Field(default_factory=list, description="Check out only these paths.")
    files: dict[str, FileT] = Field(default_factory=dict, description="Written into the workspace before the steps.")
    dockerSteps: list[DockerStepT] = Field(default_factory=list, description="Steps run in order, each in its image.")
    cliSteps: list[CliStepT] = Field(default_factory=list, description="Steps run by the executor's own tool set.")
    redactedValues: dict[str, str] = Field(default_factory=dict, description="Secrets replaced in every log line.")
    dockerAuthConfig: dict[str, Any] = Field(default_factory=dict, description="Registry credentials for pulls.")


class _Lenient(BaseModel):
    # Newer servers may add fields; an older agent ignores what it does not know.
    model_config = ConfigDict(extra="ignore")


class FileEntry(_Lenient, FileFields):
    pass


class Step(_Lenient, DockerStepFields):
    """A docker or a CLI step as the agent runs it (a CLI step's image stays empty)."""


class JobSpec(_Lenient, SpecFields[FileEntry, Step, Step]):
    """A job as the server hands it out."""

    version: int = JOB_VERSION
    id: int
    queue: str = ""
    token: str = ""
