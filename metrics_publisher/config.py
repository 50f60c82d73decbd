"""Configuration of `metrics-publisher` (docs/metrics-publisher.md), read from the environment.

Every problem is reported as one line that names the variable, says what is wrong and how to fix it, so
that the process can exit 2 before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from executor_agent.settings_common import Problem, check_one_of, is_host_port, one_line
from metrics_publisher.durations import parse_duration

DEFAULT_AWS_NAMESPACE = "sourcegraph-executor"
CLOUDS = ("aws", "gcp")
LOG_LEVELS = ("dbug", "info", "warn", "error", "crit")

Allocations = dict[str, dict[str, float]]
QueueGroups = tuple[tuple[str, ...], ...]


class ConfigError(Exception):
    """A configuration problem, already phrased as the single line shown to the operator."""


class PublisherSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, env_ignore_empty=True)

    environment_label: str = Field(
        "",
        alias="EXECUTOR_METRIC_ENVIRONMENT_LABEL",
        description="Value of the `environment` label/dimension; must equal the Terraform modules' "
        "`executor_metrics_environment_label`. Required when CloudWatch or Cloud Monitoring is enabled.",
    )
    aws_namespace: str | None = Field(
        None,
        alias="EXECUTOR_METRIC_AWS_NAMESPACE",
        description=f"CloudWatch namespace; the Terraform modules read `{DEFAULT_AWS_NAMESPACE}`. Setting it "
        "(or the region) enables CloudWatch; it then needs EXECUTOR_METRIC_AWS_REGION.",
    )
    aws_region: str | None = Field(
        None,
        alias="EXECUTOR_METRIC_AWS_REGION",
        description=f"AWS region to publish to, e.g. us-east-1. Enables CloudWatch (namespace defaults to "
        f"`{DEFAULT_AWS_NAMESPACE}`).",
    )
    aws_access_key_id: str | None = Field(
        None,
        alias="EXECUTOR_METRIC_AWS_ACCESS_KEY_ID",
        description="Static access key (the credentials module's `metric_writer_access_key_id`); unset = "
        "boto3's default credential chain.",
    )
    aws_secret_access_key: SecretStr | None = Field(
        None,
        alias="EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY",
        description="Secret of the static access key (`metric_writer_secret_key`); set with the key id.",
    )
    aws_session_token: SecretStr | None = Field(
        None,
        alias="EXECUTOR_METRIC_AWS_SESSION_TOKEN",
        description="Session token for temporary static credentials; needs the key id and secret.",
    )
    gcp_project_id: str | None = Field(
        None,
        alias="EXECUTOR_METRIC_GCP_PROJECT_ID",
        description="Google Cloud project the metric is written to; setting it enables Cloud Monitoring.",
    )
    google_credentials_file: Path | None = Field(
        None,
        alias="EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE",
        description="Path to a service account key file (JSON, or the base64 "
        "`metric_writer_credentials_file` output as is).",
    )
    google_credentials_content: Annotated[dict[str, Any] | None, NoDecode] = Field(
        None,
        alias="EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT",
        description="The service account key itself, raw JSON or base64 (the Terraform output as is). Unset "
        "together with the file = Google's default credential chain.",
    )
    gcp_api_endpoint: str | None = Field(
        None,
        alias="EXECUTOR_METRIC_GCP_API_ENDPOINT",
        description="Cloud Monitoring API endpoint, HOST[:PORT] (TLS) for private endpoints; "
        "`http://HOST:PORT` means plaintext gRPC without credentials, for local test servers only.",
    )
    allocations: Annotated[Allocations, NoDecode] = Field(
        default_factory=dict,
        alias="EXECUTOR_ALLOCATIONS",
        description='Share of each queue per cloud, JSON such as {"batches": {"aws": 0.5, "gcp": 0.5}}; keys '
        "are queue names or multi-queue names (sorted, joined by `_`); shares in [0, 1] summing to at most "
        "1. A queue not listed goes wholly to every enabled cloud; a cloud missing from a listed queue gets 0.",
    )
    publish_interval: Annotated[float, NoDecode] = Field(
        5.0,
        alias="EXECUTOR_METRIC_PUBLISH_INTERVAL",
        description="Time between rounds, Go duration (5s, 1m30s). Cloud Monitoring is written at most every 5s.",
    )
    queue_groups: Annotated[QueueGroups, NoDecode] = Field(
        (),
        alias="EXECUTOR_METRIC_QUEUE_GROUPS",
        description="Multi-queue fleets, `;`-separated, each the fleet's EXECUTOR_QUEUE_NAMES value, e.g. "
        "`batches,codeintel;codeintel,other`. Each is published as its sorted names joined by `_` with the "
        "summed size, besides every queue on its own.",
    )
    fleet_url: str = Field(
        "http://127.0.0.1:3080",
        alias="FLEET_URL",
        description="Base URL of `fleet server`, where queue sizes are read (GET /api/v1/queues).",
    )
    fleet_api_token: SecretStr = Field(
        ..., alias="FLEET_API_TOKEN", description="Bearer token of the fleet server's /api/v1 routes."
    )
    prometheus_addr: str = Field(
        "127.0.0.1:9101",
        alias="EXECUTOR_METRIC_PROMETHEUS_ADDR",
        description="HOST:PORT serving /metrics (queue sizes and the publisher's own metrics) and /healthz; "
        "`off` disables it.",
    )
    log_level: str = Field("info", alias="SRC_LOG_LEVEL", description="Log level: dbug, info, warn, error or crit.")

    @field_validator("google_credentials_content", mode="before")
    @classmethod
    def _decode_credentials(cls, v: Any) -> Any:
        return decode_credentials(v) if isinstance(v, str) else v

    @field_validator("google_credentials_file")
    @classmethod
    def _readable_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                decode_credentials(v.read_text())
            except OSError as exc:
                raise ValueError(f"cannot read {str(v)!r} ({exc.strerror}); give a readable key file") from exc
            except ValueError as exc:
                raise ValueError(f"{str(v)!r}: {exc}") from exc
        return v

    @field_validator("allocations", mode="before")
    @classmethod
    def _parse_allocations(cls, v: Any) -> Any:
        return parse_allocations(v) if isinstance(v, str) else v

    @field_validator("publish_interval", mode="before")
    @classmethod
    def _parse_interval(cls, v: Any) -> Any:
        seconds = parse_duration(v) if isinstance(v, str) else v
        if isinstance(seconds, int | float) and seconds <= 0:
            raise ValueError(f"{v!r} must be more than zero, e.g. 5s")
        return seconds

    @field_validator("queue_groups", mode="before")
    @classmethod
    def _parse_groups(cls, v: Any) -> Any:
        return parse_queue_groups(v) if isinstance(v, str) else v

    @field_validator("fleet_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL, e.g. http://127.0.0.1:3080")
        return v.rstrip("/")

    @field_validator("prometheus_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        if v.lower() == "off":
            return "off"
        if not is_host_port(v):
            raise ValueError(f"{v!r} is not HOST:PORT (e.g. 127.0.0.1:9101) or off")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        return check_one_of(v, LOG_LEVELS)

    @model_validator(mode="after")
    def _consistent(self) -> PublisherSettings:
        if self.aws_namespace and not self.aws_region:
            raise ValueError(
                "EXECUTOR_METRIC_AWS_REGION: not set while EXECUTOR_METRIC_AWS_NAMESPACE is; set the region "
                "(e.g. us-east-1) or unset the namespace"
            )
        key, secret = self.aws_access_key_id, self.aws_secret_access_key
        if bool(key) != bool(secret):
            missing = "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY" if key else "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID"
            raise ValueError(f"{missing}: not set; the access key id and secret go together")
        if self.aws_session_token and not key:
            raise ValueError(
                "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID: not set while EXECUTOR_METRIC_AWS_SESSION_TOKEN is; "
                "a session token needs the key id and secret"
            )
        if self.google_credentials_file and self.google_credentials_content:
            raise ValueError(
                "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE: set together with "
                "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT; keep only one"
            )
        if (self.google_credentials_file or self.google_credentials_content) and not self.gcp_project_id:
            raise ValueError("EXECUTOR_METRIC_GCP_PROJECT_ID: not set while Google credentials are; set the project id")
        if (self.aws_enabled or self.gcp_enabled) and not self.environment_label:
            raise ValueError(
                "EXECUTOR_METRIC_ENVIRONMENT_LABEL: not set; use the Terraform modules' "
                "executor_metrics_environment_label value (e.g. prod)"
            )
        return self

    @property
    def aws_enabled(self) -> bool:
        return bool(self.aws_region)

    @property
    def gcp_enabled(self) -> bool:
        return bool(self.gcp_project_id)

    @property
    def resolved_aws_namespace(self) -> str:
        return self.aws_namespace or DEFAULT_AWS_NAMESPACE

    def google_credentials_info(self) -> dict[str, Any] | None:
        """The service account key as a dict, from the content variable or the file; None = default chain."""
        if self.google_credentials_content:
            return self.google_credentials_content
        if self.google_credentials_file:
            return decode_credentials(self.google_credentials_file.read_text())
        return None


def decode_credentials(text: str) -> dict[str, Any]:
    """A Google key given as raw JSON or base64 JSON (Terraform outputs base64)."""
    raw = text.strip()
    if not raw.startswith("{"):
        try:
            raw = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError("is neither JSON nor base64 JSON; paste the key file or its base64 form") from exc
    try:
        info = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at line {exc.lineno}); paste the whole key file") from exc
    if not isinstance(info, dict) or "type" not in info:
        raise ValueError("is JSON without a `type` field, not a Google credentials file")
    return info


def parse_allocations(text: str) -> Allocations:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f'is not JSON ({exc.msg}); expected e.g. {{"batches": {{"aws": 0.5, "gcp": 0.5}}}}') from exc
    if not isinstance(data, dict):
        raise ValueError('must be a JSON object, e.g. {"batches": {"aws": 0.5, "gcp": 0.5}}')
    out: Allocations = {}
    for queue, shares in data.items():
        if not isinstance(shares, dict):
            raise ValueError(f'queue {queue!r}: expected an object such as {{"aws": 0.5, "gcp": 0.5}}')
        checked: dict[str, float] = {}
        for cloud, share in shares.items():
            if cloud not in CLOUDS:
                raise ValueError(f"queue {queue!r}: unknown cloud {cloud!r}; use {' or '.join(CLOUDS)}")
            ok = isinstance(share, int | float) and not isinstance(share, bool) and math.isfinite(share)
            if not ok or not 0 <= share <= 1:
                raise ValueError(f"queue {queue!r}: share of {cloud} is {share!r}; use a number from 0 to 1")
            checked[cloud] = float(share)
        if sum(checked.values()) > 1 + 1e-9:
            raise ValueError(f"queue {queue!r}: shares sum to {sum(checked.values()):g}; they must sum to at most 1")
        out[queue] = checked
    return out


def parse_queue_groups(text: str) -> QueueGroups:
    groups: list[tuple[str, ...]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        names = [n.strip() for n in part.split(",")]
        if any(not n for n in names):
            raise ValueError(f"group {part.strip()!r} has an empty queue name; use e.g. batches,codeintel")
        if len(set(names)) != len(names):
            raise ValueError(f"group {part.strip()!r} names a queue twice")
        group = tuple(sorted(names))
        if group not in groups:
            groups.append(group)
    return tuple(groups)


def load_settings(environ: Mapping[str, str] | None = None) -> PublisherSettings:
    """Settings from `environ` (default: the process environment); raises ConfigError with one line."""
    try:
        if environ is None:
            return PublisherSettings()  # type: ignore[call-arg]
        return _settings_from_mapping(environ)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, _line, first_only=True)) from None


def _settings_from_mapping(environ: Mapping[str, str]) -> PublisherSettings:
    names = {f.alias for f in PublisherSettings.model_fields.values() if f.alias}
    values = {k: v for k, v in environ.items() if k in names and v != ""}
    # Validating the mapping directly keeps tests and --help independent of the process environment.
    return PublisherSettings.model_validate(values)


def _line(p: Problem) -> str:
    # Model-level checks already start with the variable's name.
    if p.name is None:
        return p.msg
    if p.kind == "missing":
        return f"{p.name}: not set; {_describe(p.name)}"
    # Secrets are never echoed; nor is a value the message already quotes.
    hide = p.name in _SECRET_NAMES or not isinstance(p.input, str) or repr(p.input) in p.msg
    return f"{p.name}: {p.msg}" + ("" if hide else f" (got {p.input!r})")


def _describe(name: str) -> str:
    for field in PublisherSettings.model_fields.values():
        if field.alias == name and field.description:
            return field.description
    return "set it"


_SECRET_NAMES = {
    "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY",
    "EXECUTOR_METRIC_AWS_SESSION_TOKEN",
    "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT",
    "FLEET_API_TOKEN",
}
