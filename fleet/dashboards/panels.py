"""What the dashboards show and what the alerts watch: the queries, in one place.

Server series come from every `fleet server` process; job and queue series read the shared database, so they are
aggregated with `max` across processes (docs/operations.md). Agent series (`src_*`) are per executor: `sum`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    title: str
    expr: str
    legend: str
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str  # what is measured; the rule fires when it exceeds `threshold` for `for_`
    threshold: float
    for_: str
    summary: str
    description: str
    severity: str = "warning"

    @property
    def expr(self) -> str:
        return f"({self.signal}) > {self.threshold:g}"


WAIT_P90 = "histogram_quantile(0.9, max by (queue, le) (rate(fleet_job_queue_wait_seconds_bucket[5m])))"

DASHBOARDS: dict[str, tuple[str, list[Query]]] = {
    "fleet-overview": (
        "Fleet overview",
        [
            Query("Queue size", "max by (queue) (fleet_queue_size)", "{{queue}}", kind="stat"),
            Query("Executors by health", "max by (health) (fleet_executors)", "{{health}}", kind="stat"),
            Query("Oldest queued job", "max by (queue) (fleet_queue_oldest_queued_age_seconds)", "{{queue}}", "s"),
            Query("Queue wait, p90", WAIT_P90, "{{queue}}", "s"),
            Query(
                "Job outcomes per minute",
                "60 * max by (queue, state) (rate(fleet_job_outcomes_total[5m]))",
                "{{queue}} {{state}}",
            ),
            Query(
                "API requests per second by status",
                "sum by (status) (rate(fleet_http_requests_total[5m]))",
                "{{status}}",
                "reqps",
            ),
        ],
    ),
    "fleet-executors": (
        "Fleet executors",
        [
            Query("Executors by health", "max by (health) (fleet_executors)", "{{health}}"),
            Query("Jobs running per executor", "sum by (instance) (src_executor_processor_handlers)", "{{instance}}"),
            Query(
                "Jobs handled per minute",
                "60 * sum by (queue) (rate(src_executor_processor_total[5m]))",
                "{{queue}}",
            ),
            Query(
                "Job error ratio",
                "sum by (queue) (rate(src_executor_processor_errors_total[10m]))"
                " / sum by (queue) (rate(src_executor_processor_total[10m]))",
                "{{queue}}",
                "percentunit",
            ),
            Query(
                "Job duration, p90",
                "histogram_quantile(0.9,"
                " sum by (queue, le) (rate(src_executor_processor_duration_seconds_bucket[10m])))",
                "{{queue}}",
                "s",
            ),
            Query(
                "Executor API calls per second by op",
                "sum by (op) (rate(src_apiworker_apiclient_queue_total[5m]))",
                "{{op}}",
                "reqps",
            ),
            Query(
                "Command duration, p90 by op",
                "histogram_quantile(0.9, sum by (op, le) (rate(src_apiworker_command_duration_seconds_bucket[10m])))",
                "{{op}}",
                "s",
            ),
        ],
    ),
    "fleet-queues": (
        "Fleet queues",
        [
            Query(
                "Jobs waiting or running",
                'max by (queue, state) (fleet_queue_jobs{state=~"queued|errored|processing"})',
                "{{queue}} {{state}}",
            ),
            Query("Active executors per queue", "max by (queue) (fleet_queue_executors)", "{{queue}}"),
            Query("Work without an executor", "max by (queue) (fleet_queue_unserved_seconds)", "{{queue}}", "s"),
            Query("Oldest queued job", "max by (queue) (fleet_queue_oldest_queued_age_seconds)", "{{queue}}", "s"),
            Query("Queue wait, p50", WAIT_P90.replace("0.9", "0.5", 1), "{{queue}}", "s"),
            Query("Queue wait, p90", WAIT_P90, "{{queue}}", "s"),
            Query("Stalled-job resets per hour", "max by (queue) (increase(fleet_job_resets_total[1h]))", "{{queue}}"),
        ],
    ),
    "fleet-publisher": (
        "Fleet metrics publisher",
        [
            Query("Published queue size", "max by (queueName) (src_executors_queue_size)", "{{queueName}}"),
            Query(
                "Seconds since the last publish",
                "time() - max by (backend) (executor_metric_publisher_last_success_timestamp_seconds)",
                "{{backend}}",
                "s",
            ),
            Query(
                "Rounds per minute by result",
                "60 * sum by (result) (rate(executor_metric_publisher_rounds_total[5m]))",
                "{{result}}",
            ),
            Query(
                "Cloud API calls per minute",
                "60 * sum by (backend) (rate(executor_metric_publisher_api_calls_total[5m]))",
                "{{backend}}",
            ),
        ],
    ),
}

ALERTS = [
    Alert(
        "FleetQueueWithoutExecutor",
        "max by (queue) (fleet_queue_unserved_seconds)",
        300,
        "1m",
        "Queue {{ $labels.queue }} has work and no executor",
        "Jobs have waited {{ $value | humanizeDuration }} in {{ $labels.queue }} with no active executor serving "
        "it: check the instance group (min_replicas, the autoscaler's metric) and the executors' logs.",
        "critical",
    ),
    Alert(
        "FleetOldestQueuedJobTooOld",
        "max by (queue) (fleet_queue_oldest_queued_age_seconds)",
        1800,
        "5m",
        "A job has waited over 30 minutes in {{ $labels.queue }}",
        "The oldest queued job of {{ $labels.queue }} is {{ $value | humanizeDuration }} old: the fleet is too "
        "small for the load (max_replicas, jobs_per_instance_scaling) or its executors are stuck.",
    ),
    Alert(
        "FleetExecutorErrorRateHigh",
        "sum by (queue) (rate(src_executor_processor_errors_total[10m]))"
        " / sum by (queue) (rate(src_executor_processor_total[10m]))",
        0.25,
        "10m",
        "Over a quarter of {{ $labels.queue }} jobs end errored or failed",
        "{{ $value | humanizePercentage }} of the jobs executors handled in 10 minutes failed: look at a failed "
        "job's logs (`fleet jobs list --state failed`).",
    ),
    Alert(
        "FleetPublisherNotPublishing",
        "time() - max by (backend) (executor_metric_publisher_last_success_timestamp_seconds)",
        120,
        "2m",
        "metrics-publisher has not published to {{ $labels.backend }} for 2 minutes",
        "Autoscaling reads what the publisher writes: without it the fleet neither grows nor shrinks. Check "
        "the publisher's /healthz and log.",
        "critical",
    ),
    Alert(
        "FleetStalledJobResets",
        "max by (queue) (increase(fleet_job_resets_total[15m]))",
        0,
        "0m",
        "Jobs of {{ $labels.queue }} were requeued after their executor stopped heartbeating",
        "{{ $value }} job(s) in 15 minutes lost their executor mid-run (crash, preemption, network): see the "
        "dashboard's crashed executors.",
    ),
]
