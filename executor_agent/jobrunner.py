"""One job from dequeue to report: workspace, clone, files, the runtime's sandbox and its steps, teardown, and the
result sent to the server."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from executor_agent import metrics
from executor_agent import workspace as ws
from executor_agent.apiclient import ApiClient, ApiError, JobClient, JobGone, retry
from executor_agent.config import ExecutorSettings
from executor_agent.job import JobFailure, StopReason, StopSignal
from executor_agent.logstream import LogStreamer
from executor_agent.protocol.durations import format_duration
from executor_agent.protocol.jobs import JobSpec, Step
from executor_agent.protocol.wire import Outcome
from executor_agent.redaction import DEFAULT_REPLACEMENT, Redactor
from executor_agent.runtimes.base import JobSandbox, Runtime, StepRun, run_host_command
from executor_agent.runtimes.shell import BASE_ENV_NAMES

log = logging.getLogger(__name__)
GIT_ENV_NAMES = (*BASE_ENV_NAMES, "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "GIT_SSL_CAINFO", "SSL_CERT_FILE")  # fmt: skip


def clone_env(job: JobSpec, executor_name: str, authorization: str = "") -> dict[str, str]:
    """git's environment for the clone: not the executor's own (it holds EXECUTOR_FRONTEND_PASSWORD), plus the
    headers as GIT_CONFIG_* (the token never on a command line)."""
    env = {k: os.environ[k] for k in GIT_ENV_NAMES if k in os.environ} | {"GIT_TERMINAL_PROMPT": "0"}
    return env | ws.git_auth_env(job, executor_name, authorization)


class JobRunner:
    def __init__(
        self,
        settings: ExecutorSettings,
        api: ApiClient,
        runtime: Runtime,
        root: Path,
        hard_stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.runtime = runtime
        self.root = root
        # Set when the executor is being killed: results that still cannot be delivered are then given up, loudly.
        self.hard_stop = hard_stop or threading.Event()

    def run(self, raw: dict[str, Any], stop: StopSignal) -> Outcome:
        """Handle one dequeued job; returns the outcome reported (or why none was)."""
        try:
            job = JobSpec.model_validate(raw)
        except ValidationError as exc:
            return self._refuse(raw, f"the job JSON is not valid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        queue = job.queue
        started = time.monotonic()
        metrics.processor_handlers.labels(queue).inc()
        redactor = Redactor(
            {**job.redactedValues, self.settings.frontend_password: DEFAULT_REPLACEMENT, job.token: DEFAULT_REPLACEMENT}
        )
        client = self.api.for_job(job)
        streamer = LogStreamer(
            client, redactor, self.settings.max_log_entry_bytes, on_gone=lambda: stop.stop(StopReason.ABANDONED)
        )
        timer = threading.Timer(self.settings.maximum_runtime_per_job, stop.stop, args=(StopReason.TIMEOUT,))
        timer.daemon = True
        timer.start()
        failure: JobFailure | None = None
        workspace: ws.Workspace | None = None
        try:
            workspace = ws.create(self.root, self.settings.vm_prefix, job.id, self.api.executor_name)
            self._execute(job, workspace, streamer, stop)
        except JobFailure as exc:
            failure = exc
        except Exception as exc:  # a bug or an unexpected host problem must still end the job, not the executor
            log.exception("job %s: unexpected error", job.id)
            failure = JobFailure(f"executor error: {type(exc).__name__}: {exc}")
        finally:
            timer.cancel()
            if workspace is not None:
                self._teardown(workspace, streamer)
            streamer.stop(self.hard_stop.is_set)
            metrics.processor_handlers.labels(queue).dec()
        outcome = self._report(client, job, stop, failure, redactor)
        metrics.processor_total.labels(queue).inc()
        metrics.processor_duration.labels(queue).observe(time.monotonic() - started)
        if outcome not in (Outcome.COMPLETED, Outcome.CANCELED, Outcome.ABANDONED):
            metrics.processor_errors.labels(queue).inc()
        log.info("job %s: %s after %.1fs", job.id, outcome, time.monotonic() - started)
        return outcome

    def _teardown(self, workspace: ws.Workspace, streamer: LogStreamer) -> None:
        if self.settings.keep_workspaces:
            kept = f"workspace kept at {workspace.path} (EXECUTOR_KEEP_WORKSPACES)\n"
            streamer.record("teardown.workspace", ["keep", str(workspace.path)], kept, 0)
        else:
            workspace.remove()
            streamer.record("teardown.workspace", ["rm", "-rf", str(workspace.job_dir)], "", 0)

    def _refuse(self, raw: dict[str, Any], message: str) -> Outcome:
        log.error("job %s: %s", raw.get("id"), message)
        try:
            bare = JobSpec(id=int(raw["id"]), queue=str(raw["queue"]), token=str(raw["token"]))
        except (KeyError, TypeError, ValueError):
            return Outcome.UNDELIVERED  # without id, queue and token nothing can be reported; the server requeues it
        return deliver(self.api.for_job(bare), bare.id, Outcome.FAILED, message, self.hard_stop)

    def _execute(self, job: JobSpec, workspace: ws.Workspace, streamer: LogStreamer, stop: StopSignal) -> None:
        if job.repositoryName:
            checkout = ws.checkout_dir(workspace, job)
            env = clone_env(job, self.api.executor_name)
            for key, argv in ws.clone_commands(job, self.settings.frontend_url, self.api.executor_name):
                if stop.is_set():
                    return
                entry = streamer.open(key, argv)
                began = time.monotonic()
                if key == ws.SPARSE_KEY:
                    ws.write_sparse_patterns(checkout, job.sparseCheckout)
                    code = 0
                else:
                    code = run_host_command(argv, checkout, entry, stop, env=env)
                streamer.close(entry, code)
                metrics.observe_command(key, time.monotonic() - began, code != 0)
                if code != 0 and not stop.is_set():
                    raise JobFailure(f"{key} failed with exit code {code} (see its log entry)")
        if job.files:
            command = ["write", *job.files]
            try:
                written = ws.write_files(workspace.path, job.files)
            except JobFailure as exc:
                streamer.record("setup.files", command, f"{exc}\n", 1, stream="stderr")
                raise
            streamer.record("setup.files", command, "".join(f"wrote {name}\n" for name in written), 0)
        if stop.is_set():
            return
        sandbox = self.runtime.open_job(job, workspace)
        try:
            steps = [(f"step.docker.{s.key or i}", "docker", s) for i, s in enumerate(job.dockerSteps)]
            steps += [(f"step.cli.{s.key or i}", "cli", s) for i, s in enumerate(job.cliSteps)]
            for key, kind, step in steps:
                if stop.is_set():
                    return
                self._step(job, workspace, sandbox, streamer, stop, key, kind, step)
        finally:
            self._close(job, sandbox)

    def _close(self, job: JobSpec, sandbox: JobSandbox) -> None:
        try:
            sandbox.close()
        except Exception:  # the job's outcome is already decided; what is left over is the janitor's
            log.exception("job %s: closing the %s sandbox failed; the janitor removes what is left", job.id,
                          self.runtime.name)  # fmt: skip

    def _step(
        self,
        job: JobSpec,
        workspace: ws.Workspace,
        sandbox: JobSandbox,
        streamer: LogStreamer,
        stop: StopSignal,
        key: str,
        kind: str,
        step: Step,
    ) -> None:
        if step.dir:
            ws.resolve_inside(workspace.path, step.dir, f"{key} dir")
        run = StepRun(key, step.image, step.commands, step.dir, step.env, job.id, kind, list(job.redactedValues))
        entry = streamer.open(key, sandbox.describe(run))
        began = time.monotonic()
        result = sandbox.run_step(run, entry, stop)
        streamer.close(entry, result.exit_code)
        metrics.observe_command(key.rsplit(".", 1)[0], time.monotonic() - began, result.exit_code != 0)
        if result.exit_code != 0 and not stop.is_set():
            detail = result.message or f"exit code {result.exit_code}"
            raise JobFailure(f"{key} failed: {detail} (see its log entry)")

    def _report(
        self, client: JobClient, job: JobSpec, stop: StopSignal, failure: JobFailure | None, redactor: Redactor
    ) -> Outcome:
        if stop.reason == StopReason.ABANDONED:
            log.warning("job %s: abandoned (the server no longer assigns it to this executor); not reported", job.id)
            return Outcome.ABANDONED
        if stop.reason == StopReason.TIMEOUT:
            limit = format_duration(self.settings.maximum_runtime_per_job)
            outcome, message = Outcome.ERRORED, f"job exceeded maximum execution time of {limit}"
        elif stop.reason == StopReason.CANCELED:
            # Any mark* of a job with a pending cancel is recorded as canceled by the server.
            outcome, message = Outcome.CANCELED, "job was canceled"
        elif stop.reason == StopReason.SHUTDOWN:
            outcome, message = Outcome.FAILED, "executor was stopped while the job was running (second signal)"
        elif failure is not None:
            outcome, message = (Outcome.ERRORED if failure.retryable else Outcome.FAILED), redactor.redact(str(failure))
        else:
            outcome, message = Outcome.COMPLETED, ""
        return deliver(client, job.id, outcome, message, self.hard_stop)


def deliver(client: JobClient, job_id: int, outcome: Outcome, message: str, hard_stop: threading.Event) -> Outcome:
    """Send the result until the server accepts or refuses it; only a hard stop gives up, and says so."""

    def send() -> None:
        if outcome == Outcome.COMPLETED:
            client.mark_complete()
        elif outcome == Outcome.ERRORED:
            client.mark_errored(message)
        else:  # failed, and canceled: the server records a pending cancel as `canceled`
            client.mark_failed(message)

    try:
        retry(send, what=f"reporting job {job_id} {outcome}", should_stop=hard_stop.is_set)
    except JobGone as exc:
        log.warning("job %s: the server refused the %s report (%s); the job is no longer ours", job_id, outcome, exc)
        return Outcome.ABANDONED
    except ApiError as exc:
        log.error("job %s: result %s NOT delivered: %s", job_id, outcome, exc)
        return Outcome.UNDELIVERED
    if message:
        log.warning("job %s: %s: %s", job_id, outcome, message)
    return outcome
