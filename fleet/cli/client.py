"""The HTTP client the job commands use to talk to a running `fleet server`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx

from fleet.cli.errors import EXIT_CONFIG, fail

DEFAULT_URL = "http://127.0.0.1:3080"


class FleetClient:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = (url or os.environ.get("FLEET_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get("FLEET_API_TOKEN")
        if not token:
            fail("FLEET_API_TOKEN is required: export FLEET_API_TOKEN=<the server's API token>", EXIT_CONFIG)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def _unreachable(self, exc: Exception) -> NoReturn:
        fail(f"cannot reach the fleet server at {self.url} ({exc}); is `fleet server` running? Set FLEET_URL.")

    def _check(self, resp: httpx.Response) -> None:
        if resp.status_code == 401:
            fail(f"the fleet server at {self.url} refused FLEET_API_TOKEN (401)")
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail = body.get("error") or body.get("detail")
            except ValueError:
                detail = resp.text
            fail(f"{detail} (HTTP {resp.status_code})")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self._unreachable(exc)
        self._check(resp)
        return resp.json() if resp.content else None

    def events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events of `path` as (event, data) pairs, until the server ends the stream."""
        timeout = httpx.Timeout(30, read=None)  # a quiet job sends nothing but keep-alives for a while
        try:
            with self.http.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._check(resp)
                event, data = "message", []
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield event, json.loads("\n".join(data))
                        event, data = "message", []
        except httpx.HTTPError as exc:
            self._unreachable(exc)
