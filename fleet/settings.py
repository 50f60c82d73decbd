"""Configuration of `fleet server` (CONTRACT section 2), read from FLEET_* environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_EXECUTOR_TOKEN_LENGTH = 20


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

    @field_validator("executors_access_token")
    @classmethod
    def _token_long_enough(cls, v: str) -> str:
        if len(v) < MIN_EXECUTOR_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_EXECUTOR_TOKEN_LENGTH} characters (got {len(v)}); "
                "generate one with: openssl rand -hex 32"
            )
        return v

    @field_validator("api_token")
    @classmethod
    def _api_token_set(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty; generate one with: openssl rand -hex 32")
        return v

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not HOST:PORT, e.g. 127.0.0.1:3080")
        return v

    @property
    def host(self) -> str:
        return self.http_addr.rpartition(":")[0] or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.http_addr.rpartition(":")[2])

    @property
    def resolved_external_url(self) -> str:
        return (self.external_url or f"http://{self.http_addr}").rstrip("/")

    @property
    def queue_names(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]
