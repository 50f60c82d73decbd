"""Configuration of `fleet server` (docs/control-plane.md), read from FLEET_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from executor_agent.settings_common import is_host_port, is_http_url, split_host_port, unknown_variables
from fleet.schemas import check_queue_name

MIN_TOKEN_LENGTH = 20  # FLEET_EXECUTORS_ACCESS_TOKEN and FLEET_API_TOKEN
LOG_LEVELS = ("debug", "info", "warning", "error")
# FLEET_* names read by other parts of the project (the CLI client, Terraform driver, tests), not by the server.
OTHER_FLEET_NAMES = ("FLEET_URL", "FLEET_LOG_LEVEL", "FLEET_TERRAFORM_BIN", "FLEET_TERRAFORM_PLUGIN_DIR",
                     "FLEET_TF_PLUGIN_DIR", "FLEET_TEST_CACHE")  # fmt: skip


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./fleet.db",
        description="SQLAlchemy URL of the job store; postgresql+psycopg://user:pass@host/db in production.",
    )
    http_addr: str = Field("127.0.0.1:3080", description="HOST:PORT the server listens on.")
    executors_access_token: str = Field(
        ...,
        description="Shared secret executors present (EXECUTOR_FRONTEND_PASSWORD); at least 20 characters.",
    )
    api_token: str = Field(..., description="Bearer token for /api/v1/* and the dashboard.")
    external_url: str = Field("", description="URL executors use to reach the server; defaults to http://HTTP_ADDR.")
    queues: str = Field(
        "batches,codeintel",
        description="Comma-separated queues created at start; more can be added with `fleet queues add`.",
    )
    max_retries: int = Field(3, ge=0, description="Default number of retries of an errored job before it fails.")
    retry_delay_seconds: float = Field(10.0, ge=0, description="Seconds an errored job waits before it is retried.")
    stalled_job_seconds: float = Field(
        25.0,
        gt=0,
        description="A processing job with no heartbeat for this long is requeued by the resetter.",
    )
    max_resets: int = Field(3, ge=0, description="Resets after which a stalled job fails instead of being requeued.")
    resetter_interval_seconds: float = Field(5.0, gt=0, description="How often the resetter looks for stalls.")
    heartbeat_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="Executors' heartbeat interval; an executor is healthy if seen within 3 of them.",
    )
    max_long_poll_seconds: float = Field(30.0, ge=0, description="Upper bound of a dequeue's `wait` parameter.")
    long_poll_recheck_seconds: float = Field(
        1.0,
        gt=0,
        description="A waiting dequeue re-checks the store this often even without a wake-up (retry delays ending).",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes sharing the listen address; more than 1 needs PostgreSQL.",
    )
    job_retention_days: float = Field(
        0,
        ge=0,
        description="Finished jobs (completed, failed, canceled) older than this are deleted with their logs; "
        "0 keeps them forever.",
    )
    max_log_entry_bytes: int = Field(
        1024 * 1024, gt=0, description="Output of one log entry beyond this is cut, with a visible marker."
    )

    @field_validator("executors_access_token", "api_token")
    @classmethod
    def _token_long_enough(cls, v: str) -> str:
        # Both are shared secrets sent on every request: short ones are guessed.
        if len(v) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (got {len(v)}); "
                "generate one with: openssl rand -hex 32"
            )
        return v

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, v: str) -> str:
        for name in (q.strip() for q in v.split(",")):
            if name:
                check_queue_name(name)
        return v

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, v: str) -> str:
        if v and not is_http_url(v):
            raise ValueError(f"{v!r} is not an http(s) URL, e.g. https://fleet.example.com")
        return v

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        # Port 0 (any free port) is refused, unlike the metrics addresses: this address is also the default
        # external URL given to executors, so it must be the port actually listened on.
        if not is_host_port(v, min_port=1):
            raise ValueError(f"{v!r} is not HOST:PORT, e.g. 127.0.0.1:3080")
        return v

    @property
    def host(self) -> str:
        return split_host_port(self.http_addr, "127.0.0.1")[0]

    @property
    def port(self) -> int:
        return split_host_port(self.http_addr, "127.0.0.1")[1]

    @property
    def resolved_external_url(self) -> str:
        return (self.external_url or f"http://{self.http_addr}").rstrip("/")

    @property
    def queue_names(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]


def known_names() -> list[str]:
    return [f"FLEET_{name.upper()}" for name in ServerSettings.model_fields] + list(OTHER_FLEET_NAMES)


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """One warning per FLEET_* variable nothing reads, with the closest known name (a misspelling is likely)."""
    return unknown_variables(environ, prefix="FLEET_", known=known_names(), what="a fleet server setting")
