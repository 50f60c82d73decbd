"""The executor protocol from the agent's side (docs/executor.md, docs/protocol.md): queue routes and job routes.

Transport failures and 5xx are retryable; on job routes 401/403/404 mean the job is no longer ours (finished,
requeued or canceled elsewhere) and are never retried.

Every call to an unreachable server backs off on one policy (BACKOFF: full-jitter exponential, 0.5 s doubling to
30 s, with tenacity). While the server does not answer, one light probe per client (GET /healthz, which answers
only when the database does) runs every 1-2 s; its first success wakes every backing-off call at once, so
results and the last log state go out within a second or two of the server's return, not after a grown delay.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import tenacity

from executor_agent import metrics
from executor_agent.protocol.jobs import JobSpec
from executor_agent.protocol.wire import (
    EXECUTOR_NAME_HEADER,
    EXECUTOR_SCHEME,
    JOB_ID_HEADER,
    TEST_AUTH_PATH,
    JobRoute,
    QueueRoute,
    multi_queue_path,
    queue_path,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF = tenacity.wait_random_exponential(multiplier=0.5, max=30.0)
PROBE_PERIOD = (1.0, 2.0)  # seconds between probes of a server that does not answer, jittered
# Set while the server answers; cleared by a call that found it unreachable. Backing-off calls wait on it.
_answered = threading.Event()
_answered.set()


class ApiError(Exception):
    pass


class ServerUnavailable(ApiError):
    """Transport error, timeout, 429 or 5xx: worth trying again."""


class Refused(ApiError):
    """The server understood the request and said no."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class JobGone(Refused):
    """The job is not ours any more; abandon it."""


def backoff_delays() -> Iterator[float]:
    """The BACKOFF policy as a sequence of delays, for loops that wait on something else too (a drain)."""
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    while True:
        yield BACKOFF(state)
        state.attempt_number += 1


def server_answering() -> bool:
    """False from a call that found the server unreachable until one (or the probe) gets an answer."""
    return _answered.is_set()


def wait_for_server(delay: float) -> None:
    """Sleep up to delay, ending early when any call or the probe finds the server answering again."""
    _answered.wait(delay)


def retry(fn: Callable[[], T], *, what: str, should_stop: Callable[[], bool] = lambda: False) -> T:
    """Call fn until it succeeds or is refused; ServerUnavailable is retried on BACKOFF until should_stop()."""

    def note(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; retrying in up to %.1fs", what, exc, delay)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(ServerUnavailable),
        wait=BACKOFF,
        stop=lambda _: should_stop(),
        sleep=wait_for_server,
        before_sleep=note,
        reraise=True,
    )
    return retrying(fn)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:500]


class ApiClient:
    def __init__(self, base_url: str, password: str, executor_name: str, version: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.executor_name = executor_name
        self.version = version
        self._http = self._client()
        # Dequeues long-poll on their own connection, so a drain can cut them short without touching job writes.
        self._poll_http = self._client()
        self._auth = {"Authorization": f"{EXECUTOR_SCHEME} {password}"}
        self._probing = threading.Lock()
        self._closed = threading.Event()

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(30.0, connect=10.0),
            headers={"User-Agent": f"executor/{self.version}"},
        )

    def interrupt_polling(self) -> None:
        """End a waiting dequeue now; the server hands no job to a client that went away."""
        self._poll_http.close()

    def close(self) -> None:
        self._closed.set()
        self._http.close()
        self._poll_http.close()

    def _unreachable(self) -> None:
        _answered.clear()
        if self._probing.acquire(blocking=False):
            threading.Thread(target=self._probe, name="server-probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(5.0)) as probe:
                while not _answered.is_set() and not self._closed.is_set():
                    self._closed.wait(random.uniform(*PROBE_PERIOD))
                    try:
                        if probe.get("/healthz").status_code < 500:
                            _answered.set()
                    except httpx.HTTPError:
                        pass
        finally:
            self._probing.release()

    def request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        gone_on: tuple[int, ...] = (),
        polling: bool = False,
    ) -> httpx.Response:
        started = time.monotonic()
        http = self._poll_http if polling else self._http
        try:
            response = http.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers or self._auth,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: the polling client was closed
            metrics.observe_api(op, time.monotonic() - started, error=True)
            if not isinstance(exc, RuntimeError):
                self._unreachable()
            raise ServerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        failed = response.status_code >= 400
        metrics.observe_api(op, time.monotonic() - started, error=failed)
        if response.status_code >= 500 or response.status_code == 429:
            self._unreachable()
            raise ServerUnavailable(f"{method} {path}: HTTP {response.status_code}: {_detail(response)}")
        _answered.set()
        if response.status_code in gone_on:
            raise JobGone(response.status_code, _detail(response))
        if failed:
            raise Refused(response.status_code, _detail(response))
        return response

    # --- queue routes (shared secret) ---

    def dequeue(self, queues: list[str], wait: float, resources: dict[str, Any]) -> dict[str, Any] | None:
        body: dict[str, Any] = {"executorName": self.executor_name, "version": self.version, **resources}
        if len(queues) == 1:
            path = queue_path(QueueRoute.DEQUEUE, queues[0])
        else:
            path, body["queues"] = multi_queue_path(QueueRoute.DEQUEUE), queues
        params = {"wait": f"{wait:g}"} if wait > 0 else None
        response = self.request("dequeue", "POST", path, json=body, params=params, timeout=wait + 30, polling=True)
        if response.status_code == 204:
            return None
        job: dict[str, Any] = response.json()
        job.setdefault("queue", queues[0])
        return job

    def heartbeat(self, queues: list[str], job_ids: list[int], info: dict[str, str]) -> tuple[set[int], set[int]]:
        body: dict[str, Any] = {"executorName": self.executor_name, "jobIds": [str(i) for i in job_ids], **info}
        if len(queues) == 1:
            path = queue_path(QueueRoute.HEARTBEAT, queues[0])
        else:
            path, body["queueNames"] = multi_queue_path(QueueRoute.HEARTBEAT), queues
        reply = self.request("heartbeat", "POST", path, json=body).json()
        return {int(i) for i in reply.get("knownIds", [])}, {int(i) for i in reply.get("cancelIds", [])}

    def test_auth(self, queues: list[str] | None = None) -> httpx.Response:
        """Checks the secret, and that the server has these queues (404 naming the first it lacks)."""
        params = {"queue": queues} if queues else None
        return self.request("test_auth", "GET", TEST_AUTH_PATH, params=params)

    def for_job(self, job: JobSpec) -> JobClient:
        return JobClient(self, job)


class JobClient:
    """Writes about one job, authenticated with that job's token."""

    def __init__(self, api: ApiClient, job: JobSpec) -> None:
        self.api = api
        self.job = job
        self.headers = {
            "Authorization": f"Bearer {job.token}",
            JOB_ID_HEADER: str(job.id),
            EXECUTOR_NAME_HEADER: api.executor_name,
        }

    def _post(self, op: str, route: JobRoute, body: dict[str, Any]) -> httpx.Response:
        payload = {"executorName": self.api.executor_name, "jobId": self.job.id, **body}
        path = queue_path(route, self.job.queue)
        return self.api.request(op, "POST", path, json=payload, headers=self.headers, gone_on=(401, 403, 404))

    def add_log_entry(self, entry: dict[str, Any]) -> int:
        return int(self._post("add_execution_log_entry", JobRoute.ADD_LOG_ENTRY, entry).json())

    def update_log_entry(self, entry_id: int, entry: dict[str, Any]) -> None:
        self._post("update_execution_log_entry", JobRoute.UPDATE_LOG_ENTRY, {**entry, "entryId": entry_id})

    def mark_complete(self) -> None:
        self._post("mark_complete", JobRoute.MARK_COMPLETE, {})

    def mark_errored(self, message: str) -> None:
        self._post("mark_errored", JobRoute.MARK_ERRORED, {"errorMessage": message})

    def mark_failed(self, message: str) -> None:
        self._post("mark_failed", JobRoute.MARK_FAILED, {"errorMessage": message})
