"""`executor run`: take jobs while there is room, run each in its own thread, heartbeat, drain on signals."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from executor_agent import metrics
from executor_agent.apiclient import ApiClient, ApiError, Refused, ServerUnavailable, backoff_delays, wait_for_server
from executor_agent.config import ExecutorSettings
from executor_agent.hostinfo import heartbeat_info
from executor_agent.janitor import Janitor
from executor_agent.job import StopReason, StopSignal
from executor_agent.jobrunner import JobRunner
from executor_agent.runtimes.base import STOP_GRACE_SECONDS, Runtime

log = logging.getLogger(__name__)
MAX_LONG_POLL = 30.0


@dataclass
class Running:
    stop: StopSignal
    thread: threading.Thread


@dataclass
class Agent:
    settings: ExecutorSettings
    api: ApiClient
    runtime: Runtime
    root: Path
    runtime_version: str = ""
    draining: threading.Event = field(default_factory=threading.Event)
    killing: threading.Event = field(default_factory=threading.Event)
    running: dict[int, Running] = field(default_factory=dict)
    dequeued: int = 0
    end_reason: str = ""
    exit_code: int = 0  # set when the loop ends on an error no retry can fix

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._signals = 0
        self.runner = JobRunner(self.settings, self.api, self.runtime, self.root, self.killing)

    # --- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        janitor = Janitor(
            self.runtime, self.root, self.settings.vm_prefix, self.api.executor_name,
            self.settings.cleanup_task_interval, self.settings.keep_workspaces, self.active_ids,
        )  # fmt: skip
        heartbeat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        poller = threading.Thread(target=self._take_jobs, name="dequeue", daemon=True)
        try:
            janitor.start()
            heartbeat.start()
            poller.start()
            while poller.is_alive():
                if self.draining.wait(0.2):
                    self.api.interrupt_polling()
                    break
            poller.join()
            log.warning("executor stopped taking jobs: %s", self.end_reason or "signal received")
            code = self._finish_running() or self.exit_code
            if code == 0:
                self.draining.set()  # the heartbeat thread ends, so no later heartbeat undoes the goodbye
                heartbeat.join(self.settings.heartbeat_interval + 35)
                self._goodbye()
            return code
        finally:
            self.draining.set()
            janitor.stop()
            log.warning("executor exiting; %d job(s) dequeued", self.dequeued)

    def _take_jobs(self) -> None:
        started = time.monotonic()
        delays = backoff_delays()
        while True:
            with self._lock:
                while len(self.running) >= self.settings.maximum_num_jobs and not self.draining.is_set():
                    self._slot_freed.wait(0.5)
            limit = self.settings.num_total_jobs
            active_left = self.settings.max_active_time - (time.monotonic() - started)
            if self.draining.is_set():
                self.end_reason = "shutdown signal received"
                return
            if limit and self.dequeued >= limit:
                self.end_reason = f"EXECUTOR_NUM_TOTAL_JOBS={limit} jobs dequeued"
                return
            if self.settings.max_active_time and active_left <= 0:
                self.end_reason = "EXECUTOR_MAX_ACTIVE_TIME elapsed"
                return
            wait = min(self.settings.queue_long_poll, MAX_LONG_POLL)
            if self.settings.max_active_time:
                wait = max(0.0, min(wait, active_left))
            asked = time.monotonic()
            try:
                job = self.api.dequeue(self.settings.queue_names, wait, self._resources())
            except (ServerUnavailable, Refused) as exc:
                if self.draining.is_set():
                    continue
                if isinstance(exc, Refused) and exc.status == 404:
                    # An unknown queue does not appear by retrying: say so once and stop (exit 2).
                    log.error("dequeue refused: %s; check EXECUTOR_QUEUE_NAME(S)", exc)
                    self.end_reason, self.exit_code = f"queue not on the server ({exc})", 2
                    return
                delay = next(delays)
                hint = ""
                if isinstance(exc, Refused) and exc.status == 401:
                    hint = " (check that EXECUTOR_FRONTEND_PASSWORD equals the server's FLEET_EXECUTORS_ACCESS_TOKEN)"
                log.warning("dequeue failed: %s%s; retrying in %.1fs", exc, hint, delay)
                self.draining.wait(delay)
                continue
            delays = backoff_delays()
            if job is None:
                # A server that does not long-poll answers at once: fall back to the poll interval.
                pause = self.settings.queue_poll_interval - (time.monotonic() - asked)
                if pause > 0:
                    self.draining.wait(pause)
                continue
            self.dequeued += 1
            self._start(job)

    def _start(self, job: dict[str, Any]) -> None:
        job_id = int(job["id"])
        stop = StopSignal()
        thread = threading.Thread(target=self._work, args=(job, stop), name=f"job-{job_id}", daemon=True)
        with self._lock:
            self.running[job_id] = Running(stop, thread)
        log.info("job %s dequeued from %s", job_id, job.get("queue"))
        thread.start()

    def _work(self, job: dict[str, Any], stop: StopSignal) -> None:
        try:
            self.runner.run(job, stop)
        finally:
            with self._lock:
                self.running.pop(int(job["id"]), None)
                self._slot_freed.notify_all()

    def _finish_running(self) -> int:
        """Let running jobs end (bounded by the grace period); a second signal or the deadline stops them."""
        deadline = time.monotonic() + self.settings.drain_seconds
        if self.running:
            log.warning("waiting for %d running job(s) to finish", len(self.running))
        while self.active_ids() and not self.killing.is_set() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not self.active_ids():
            return 0
        if not self.killing.is_set():
            log.error("grace period over; stopping %d running job(s)", len(self.running))
            self.killing.set()
        with self._lock:
            threads = list(self.running.values())
        for item in threads:
            item.stop.stop(StopReason.SHUTDOWN)
        for item in threads:
            item.thread.join(STOP_GRACE_SECONDS + 30)
        return 1

    # --- around the loop --------------------------------------------------------------------------------------

    def active_ids(self) -> set[int]:
        with self._lock:
            return set(self.running)

    def _resources(self) -> dict[str, Any]:
        return {"numCPUs": int(self.settings.job_num_cpus), "memory": str(self.settings.job_memory)}

    def _heartbeats(self) -> None:
        info = heartbeat_info(self.runtime_version)
        delays = backoff_delays()
        while not self.draining.is_set() or self.active_ids():
            ids = sorted(self.active_ids())
            try:
                known, cancel = self.api.heartbeat(
                    self.settings.queue_names, ids, {**info, "prometheusMetrics": metrics.exposition()}
                )
            except ApiError as exc:
                delay = next(delays)
                log.warning("heartbeat failed: %s; next in up to %.1fs", exc, delay)
                if isinstance(exc, ServerUnavailable):
                    wait_for_server(delay)  # the one backoff policy, cut short when the server answers again
                else:
                    time.sleep(delay)
                continue
            else:
                delays = backoff_delays()
                with self._lock:
                    current = dict(self.running)
                for job_id in ids:
                    if job_id in cancel and job_id in current and current[job_id].stop.stop(StopReason.CANCELED):
                        log.warning("job %s: canceled by the server", job_id)
                    elif job_id not in known and job_id in current and current[job_id].stop.stop(StopReason.ABANDONED):
                        log.warning("job %s: unknown to the server (requeued or finished elsewhere)", job_id)
            # Draining wakes the wait at once, so an exit never sits out a long heartbeat interval.
            if not self.draining.wait(self.settings.heartbeat_interval):
                continue
            time.sleep(1.0)

    def _goodbye(self) -> None:
        """A last heartbeat saying this executor exits cleanly, so the server shows it drained, not crashed."""
        info = {**heartbeat_info(self.runtime_version), "exitReason": f"drained: {self.end_reason or 'signal'}"}
        try:
            self.api.heartbeat(self.settings.queue_names, [], info)
        except ApiError as exc:
            log.warning("could not tell the server this executor exits: %s", exc)

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.warning("%s: draining (no new jobs; running jobs may finish); send it again to stop them", name)
            self.draining.set()
        else:
            log.warning("%s again: stopping running jobs and reporting them failed", name)
            self.killing.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)
