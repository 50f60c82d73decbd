"""Reading queue sizes from `fleet server` (GET /api/v1/queues)."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ValidationError


class SourceError(Exception):
    """The fleet server could not be read this round; the message is one log line."""


class _Queue(BaseModel):
    name: str
    queued: int = 0
    processing: int = 0
    errored: int = 0
    size: int | None = None


class _Queues(BaseModel):
    queues: list[_Queue]


class FleetQueues:
    """Queue sizes as the fleet server reports them; size = queued + errored + processing."""

    def __init__(self, base_url: str, api_token: str, timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/api/v1/queues"
        self._client = httpx.Client(headers={"Authorization": f"Bearer {api_token}"}, timeout=timeout)

    def read(self) -> dict[str, int]:
        try:
            response = self._client.get(self.url)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach the fleet server at {self.url}: {exc or type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise SourceError(
                f"the fleet server refused FLEET_API_TOKEN (HTTP {response.status_code}); use its API token"
            )
        if response.status_code != 200:
            raise SourceError(f"GET {self.url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = _Queues.model_validate_json(response.content)
        except ValidationError as exc:
            raise SourceError(f"GET {self.url} answered an unexpected body: {exc.errors()[0]['msg']}") from exc
        return {q.name: q.size if q.size is not None else q.queued + q.processing + q.errored for q in body.queues}

    def close(self) -> None:
        self._client.close()
