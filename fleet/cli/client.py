"""The HTTP client the job commands use to talk to a running `fleet server`."""

from __future__ import annotations

import os
from typing import Any

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

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the fleet server at {self.url} ({exc}); is `fleet server` running? Set FLEET_URL.")
        if resp.status_code == 401:
            fail(f"the fleet server at {self.url} refused FLEET_API_TOKEN (401)")
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail = body.get("error") or body.get("detail")
            except ValueError:
                detail = resp.text
            fail(f"{detail} (HTTP {resp.status_code})")
        return resp.json() if resp.content else None
