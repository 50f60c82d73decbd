"""The publishing loop: read queue sizes, hand them to every backend, back off on failures, track health."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from metrics_publisher.backends.base import Backend
from metrics_publisher.config import Allocations, QueueGroups
from metrics_publisher.series import queue_totals, samples_for
from metrics_publisher.source import FleetQueues, SourceError
from metrics_publisher.telemetry import Telemetry

log = logging.getLogger("metrics_publisher")

MAX_BACKOFF_SECONDS = 60.0
UNHEALTHY_AFTER_INTERVALS = 3


class RoundOutcome(StrEnum):
    """Label values of executor_metric_publisher_rounds_total."""

    OK = "ok"
    FAILED = "failed"


@dataclass
class _BackendState:
    backend: Backend
    failures: int = 0
    next_attempt: float = 0.0
    last_success: float | None = None
    last_error: str = ""
    thread: threading.Thread | None = None


@dataclass
class RoundResult:
    ok: bool
    sizes: dict[str, int] | None = None
    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Publisher:
    def __init__(
        self,
        source: FleetQueues,
        backends: Sequence[Backend],
        *,
        interval: float,
        allocations: Allocations,
        groups: QueueGroups,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.interval = interval
        self.allocations = allocations
        self.groups = groups
        self.telemetry = telemetry
        self._clock = clock
        self._states = [_BackendState(b) for b in backends]
        self._lock = threading.Lock()
        # Queues once seen keep being published (as 0) so that scaling policies never read a stale value.
        self._known: set[str] = set()
        self._warned_missing: set[str] = set()
        self._started = clock()
        self._last_ok_round: float | None = None

    # --- one round -------------------------------------------------------------------------------------------

    def run_round(self, wait: float, stop: threading.Event | None = None) -> RoundResult:
        started = self._clock()
        try:
            sizes = self.source.read()
        except SourceError as exc:
            log.warning("fleet: %s; nothing published this round", exc)
            self.telemetry.failures.labels(backend="fleet").inc()
            self.telemetry.rounds.labels(result=RoundOutcome.FAILED).inc()
            return RoundResult(ok=False, errors={"fleet": str(exc)})
        totals = queue_totals(self._with_known(sizes), self.groups)
        at = datetime.now(UTC)
        result = RoundResult(ok=True, sizes=totals)
        started_threads = []
        for state in self._states:
            if state.thread is not None and state.thread.is_alive():
                result.errors[state.backend.name] = "previous publish still running"
                log.warning("%s: previous publish still running; skipping this round", state.backend.name)
            elif started < state.next_attempt - 0.1 * self.interval:
                result.errors[state.backend.name] = f"backing off after {state.failures} failures"
            else:
                samples = samples_for(totals, self.allocations, state.backend.cloud)
                thread = threading.Thread(target=self._publish, args=(state, samples, at, started, result), daemon=True)
                state.thread = thread
                thread.start()
                started_threads.append(state)
        deadline = started + wait
        for state in started_threads:
            running = state.thread
            while (
                running is not None and running.is_alive() and self._clock() < deadline and not (stop and stop.is_set())
            ):
                running.join(timeout=min(0.05, max(0.0, deadline - self._clock())))
            if running is not None and running.is_alive():
                result.errors.setdefault(state.backend.name, f"no answer within {wait:g}s")
        with self._lock:
            # A publish of an earlier round that finishes late records into that round's result, not this one.
            result.ok = all(s.backend.name in result.calls for s in self._states)
            if result.ok:
                self._last_ok_round = self._clock()
        self.telemetry.rounds.labels(result=RoundOutcome.OK if result.ok else RoundOutcome.FAILED).inc()
        return result

    def _with_known(self, sizes: dict[str, int]) -> dict[str, int]:
        self._known.update(sizes)
        for group in self.groups:
            for queue in group:
                if queue not in sizes and queue not in self._warned_missing:
                    self._warned_missing.add(queue)
                    log.warning("EXECUTOR_METRIC_QUEUE_GROUPS names %r, which the fleet server does not report", queue)
        return {q: sizes.get(q, 0) for q in sorted(self._known)}

    def _publish(
        self, state: _BackendState, samples: list[Any], at: datetime, started: float, result: RoundResult
    ) -> None:
        name = state.backend.name
        try:
            calls = state.backend.publish(samples, at)
        except Exception as exc:  # any failure of one backend must leave the others and the loop running
            with self._lock:
                state.failures += 1
                delay = min(self.interval * 2 ** (state.failures - 1), max(MAX_BACKOFF_SECONDS, self.interval))
                state.next_attempt = started + delay
                state.last_error = describe(exc)
                result.errors[name] = state.last_error
            self.telemetry.failures.labels(backend=name).inc()
            log.warning("%s: publish failed (%s); next attempt in %gs", name, state.last_error, delay)
            return
        with self._lock:
            if state.failures:
                log.info("%s: publishing again after %d failed attempts", name, state.failures)
            state.failures = 0
            state.next_attempt = 0.0
            state.last_error = ""
            state.last_success = self._clock()
            result.calls[name] = calls
        self.telemetry.api_calls.labels(backend=name).inc(calls)
        self.telemetry.last_success.labels(backend=name).set(time.time())
        log.debug("%s: published %d values in %d calls", name, len(samples), calls)

    # --- the loop --------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Rounds every interval until `stop` is set; returns within one interval of it."""
        next_tick = self._clock()
        last_sizes: dict[str, int] | None = None
        while not stop.is_set():
            result = self.run_round(wait=self.interval, stop=stop)
            if result.ok and result.sizes is not None:
                # Every round would flood the log; a change of size is what an operator looks for.
                changed = result.sizes != last_sizes
                last_sizes = result.sizes
                sizes = ", ".join(f"{k}={v}" for k, v in result.sizes.items()) or "no queues"
                log.log(logging.INFO if changed else logging.DEBUG, "published: %s", sizes)
            next_tick += self.interval
            now = self._clock()
            if next_tick < now:
                # A round that overran skips the ticks it missed instead of bursting to catch up.
                next_tick = now
            stop.wait(next_tick - now)

    def close(self) -> None:
        for state in self._states:
            try:
                state.backend.close()
            except Exception as exc:  # closing is best effort on the way out
                log.debug("%s: close failed: %s", state.backend.name, describe(exc))
        self.source.close()

    # --- health ----------------------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while a round fully succeeded within the last 3 intervals (or the process is younger)."""
        now = self._clock()
        with self._lock:
            reference = self._last_ok_round if self._last_ok_round is not None else self._started
            healthy = now - reference <= UNHEALTHY_AFTER_INTERVALS * self.interval
            detail: dict[str, Any] = {
                "healthy": healthy,
                "secondsSinceLastGoodRound": None if self._last_ok_round is None else round(now - reference, 3),
                "backends": {
                    s.backend.name: {
                        "failures": s.failures,
                        "lastError": s.last_error,
                        "secondsSinceSuccess": None if s.last_success is None else round(now - s.last_success, 3),
                    }
                    for s in self._states
                },
            }
        return healthy, detail
