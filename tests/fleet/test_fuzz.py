"""Generated hostile input, bounded in time: schemathesis over /openapi.json (the job API) and a hypothesis fuzz of
the executor routes (which /openapi.json does not list). Whatever comes in, the answer is never a 5xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.fleet_server import FleetServer, start_fleet_server

BUDGET_SECONDS = 50.0  # per test; examples stop being drawn once it is spent
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    s = start_fleet_server(tmp_path_factory.mktemp("fuzz"))
    yield s
    s.stop()


def test_schemathesis_finds_no_server_error(server: FleetServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    auth = {"Authorization": f"Bearer {server.api_token}"}
    deadline = time.monotonic() + BUDGET_SECONDS
    errors: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation fails the test here

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal ran
            if time.monotonic() > deadline:
                return
            response = case.call(base_url=server.url, headers=auth, timeout=60)
            ran += 1
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} {case.body!r:.200} -> {response.status_code}")

        check()
    assert ran > 20, f"only {ran} cases ran: the budget is too small to say anything"
    assert not errors, "\n".join(errors[:20])


EXECUTOR_PATHS = [
    "/.executors/queue/{queue}/dequeue",
    "/.executors/queue/{queue}/heartbeat",
    "/.executors/queue/{queue}/addExecutionLogEntry",
    "/.executors/queue/{queue}/updateExecutionLogEntry",
    "/.executors/queue/{queue}/markComplete",
    "/.executors/queue/{queue}/markErrored",
    "/.executors/queue/{queue}/markFailed",
    "/.executors/queue/dequeue",
    "/.executors/queue/heartbeat",
]
FIELDS = ["executorName", "jobId", "entryId", "key", "command", "startTime", "exitCode", "out", "durationMs",
          "errorMessage", "jobIds", "queueNames", "queues", "version", "numCPUs", "memory"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["²", "١٢", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "batches\n", "\ud800"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)  # noqa: E501
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=8).map(
        lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=200),
)


def test_executor_routes_never_answer_5xx(server: FleetServer) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    errors: list[str] = []
    ran = 0
    secret = {"Authorization": f"token-executor {server.executor_token}"}
    with httpx.Client(base_url=server.url, timeout=60) as client:

        @settings(FUZZ, max_examples=EXAMPLES * 4)
        @given(
            path=st.sampled_from(EXECUTOR_PATHS),
            queue=st.one_of(st.just("batches"), st.text(max_size=20)),
            body=bodies,
            wait=st.one_of(st.none(), st.sampled_from(["nan", "inf", "-1", "1e308", "0.01", "x"])),
            bearer=st.booleans(),
        )
        def check(path: str, queue: str, body: bytes, wait: str | None, bearer: bool) -> None:
            nonlocal ran
            if time.monotonic() > deadline:
                return
            url = path.replace("{queue}", quote(queue, safe="") or "x")
            headers = {"Authorization": "Bearer not-a-token"} if bearer else secret
            params = {"wait": wait} if wait is not None and "dequeue" in path else None
            r = client.post(url, content=body, headers={**headers, "Content-Type": "application/json"}, params=params)
            ran += 1
            if r.status_code >= 500:
                errors.append(f"POST {url} {body[:200]!r} -> {r.status_code} {r.text[:200]}")

        check()
    assert ran > 50, f"only {ran} cases ran"
    assert not errors, "\n".join(errors[:20])
