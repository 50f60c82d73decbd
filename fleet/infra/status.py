"""What an operator needs on one screen: per pool, the queue, the instance group and the executors seen.

Queue sizes and executors come from the fleet server's job API; instance counts from the cloud's own API (EC2 Auto
Scaling group, or Compute Engine regional managed instance group). Disagreements become warnings.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fleet.infra.config import Cloud, FleetConfig, PoolConfig

# An executor not heard from for this long no longer counts as serving its pool.
EXECUTOR_SILENCE_SECONDS = 300


class StatusError(RuntimeError):
    """A source of status that cannot be read; the message says which and what to do."""


@dataclass
class GroupCounts:
    name: str
    found: bool
    desired: int = 0
    in_service: int = 0
    pending: int = 0
    other: int = 0  # terminating, stopping, ...


@dataclass
class PoolStatus:
    pool: str
    queue: str
    queued: int
    processing: int
    errored: int
    size: int
    oldest_queued_age_seconds: float | None
    policy_wants: int
    group: GroupCounts
    executors_seen: int  # ever registered for this pool's queues
    executors_recent: int  # heard from within EXECUTOR_SILENCE_SECONDS
    executors_healthy: int  # marked healthy by the server (heartbeat within a few intervals)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def server_get(url: str, token: str, path: str) -> Any:
    try:
        resp = httpx.get(f"{url.rstrip('/')}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=15)
    except httpx.HTTPError as exc:
        raise StatusError(f"cannot reach the fleet server at {url} ({exc}); set FLEET_URL or fix fleet_url") from None
    if resp.status_code == 401:
        raise StatusError(f"the fleet server at {url} refused FLEET_API_TOKEN (401); export the server's API token")
    if resp.status_code != 200:
        raise StatusError(f"GET {path} on {url} answered HTTP {resp.status_code}")
    return resp.json()


def aws_groups(config: FleetConfig, names: list[str]) -> dict[str, GroupCounts]:
    import boto3
    import botocore.exceptions

    client = boto3.client("autoscaling", region_name=config.region)
    try:
        reply = client.describe_auto_scaling_groups(AutoScalingGroupNames=names)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StatusError(f"cannot read the Auto Scaling groups in {config.region}: {exc}") from None
    found: dict[str, GroupCounts] = {n: GroupCounts(n, found=False) for n in names}
    for group in reply.get("AutoScalingGroups", []):
        states = [i.get("LifecycleState", "") for i in group.get("Instances", [])]
        in_service = sum(1 for s in states if s == "InService")
        pending = sum(1 for s in states if s.startswith("Pending"))
        found[group["AutoScalingGroupName"]] = GroupCounts(
            group["AutoScalingGroupName"],
            found=True,
            desired=int(group.get("DesiredCapacity", 0)),
            in_service=in_service,
            pending=pending,
            other=len(states) - in_service - pending,
        )
    return found


def google_groups(config: FleetConfig, names: list[str]) -> dict[str, GroupCounts]:
    from google.api_core import exceptions as gexc
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    options = ClientOptions(api_endpoint=config.compute_api_endpoint) if config.compute_api_endpoint else None
    # A plain-HTTP endpoint is a local stand-in or a private proxy: never send Google credentials over it.
    plain = bool(config.compute_api_endpoint and config.compute_api_endpoint.startswith("http://"))
    client = compute_v1.RegionInstanceGroupManagersClient(
        transport="rest", client_options=options, credentials=AnonymousCredentials() if plain else None
    )
    result: dict[str, GroupCounts] = {}
    for name in names:
        try:
            mig = client.get(project=config.project, region=config.region, instance_group_manager=name)
        except gexc.NotFound:
            result[name] = GroupCounts(name, found=False)
            continue
        except gexc.GoogleAPIError as exc:
            raise StatusError(f"cannot read instance group {name} in {config.project}/{config.region}: {exc}") from None
        actions = mig.current_actions
        pending = actions.creating + actions.creating_without_retries + actions.recreating + actions.verifying
        pending += actions.starting + actions.restarting + actions.resuming + actions.refreshing
        other = actions.deleting + actions.abandoning + actions.stopping + actions.suspending
        result[name] = GroupCounts(
            name, found=True, desired=mig.target_size, in_service=actions.none, pending=pending, other=other
        )
    return result


def _age_seconds(stamp: str | None, now: datetime) -> float:
    """Seconds since an ISO timestamp; never-seen or unreadable counts as infinitely old."""
    if not stamp:
        return math.inf
    try:
        seen = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return math.inf
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return (now - seen).total_seconds()


def _pool_warnings(pool: PoolConfig, st: PoolStatus) -> list[str]:
    warnings = []
    if not st.group.found:
        warnings.append(f"instance group {st.group.name} not found: run `fleet infra apply` (or check region/name)")
        return warnings
    if st.group.in_service > 0 and st.executors_recent == 0:
        warnings.append(
            f"{st.group.in_service} instance(s) in service but no executor seen for {st.queue} in the last "
            f"{EXECUTOR_SILENCE_SECONDS // 60} minutes: check fleet_url, the executor secret and the VM logs"
        )
    if st.size > pool.max_replicas * pool.jobs_per_instance_scaling and st.group.desired >= pool.max_replicas:
        warnings.append(
            f"queue {st.size} is beyond what max_replicas={pool.max_replicas} covers and the group is at its "
            "maximum: raise max_replicas or jobs_per_instance_scaling"
        )
    if st.group.desired != st.policy_wants:
        warnings.append(
            f"desired {st.group.desired} but the policy wants {st.policy_wants} for queue size {st.size}: "
            "autoscaling lags or the metrics publisher is not publishing"
        )
    return warnings


def collect(config: FleetConfig, server_url: str | None = None, token: str | None = None) -> list[PoolStatus]:
    url = server_url or os.environ.get("FLEET_URL") or config.fleet_url
    token = token or os.environ.get("FLEET_API_TOKEN")
    if not token:
        raise StatusError("FLEET_API_TOKEN is required: export FLEET_API_TOKEN=<the fleet server's API token>")
    queues = {q["name"]: q for q in server_get(url, token, "/api/v1/queues").get("queues", [])}
    executors = server_get(url, token, "/api/v1/executors").get("executors", [])
    names = [config.group_name(p) for p in config.pools]
    groups = aws_groups(config, names) if config.cloud is Cloud.AWS else google_groups(config, names)
    now = datetime.now(UTC)
    statuses = []
    for pool in config.pools:
        counts = {"queued": 0, "processing": 0, "errored": 0, "size": 0}
        ages = []
        for qname in pool.queue_list:
            q = queues.get(qname, {})
            for key in counts:
                counts[key] += int(q.get(key, 0))
            if q.get("oldestQueuedAgeSeconds") is not None:
                ages.append(float(q["oldestQueuedAgeSeconds"]))
        serving = [e for e in executors if set(e.get("queues", [])) & set(pool.queue_list)]
        recent = [e for e in serving if _age_seconds(e.get("lastSeenAt"), now) < EXECUTOR_SILENCE_SECONDS]
        wants = max(
            pool.min_replicas, min(pool.max_replicas, math.ceil(counts["size"] / pool.jobs_per_instance_scaling))
        )
        st = PoolStatus(
            pool=pool.name,
            queue=pool.metric_queue_name,
            oldest_queued_age_seconds=max(ages) if ages else None,
            policy_wants=wants,
            group=groups[config.group_name(pool)],
            executors_seen=len(serving),
            executors_recent=len(recent),
            executors_healthy=sum(1 for e in serving if e.get("healthy") is True),
            queued=counts["queued"],
            processing=counts["processing"],
            errored=counts["errored"],
            size=counts["size"],
        )
        st.warnings = _pool_warnings(pool, st)
        statuses.append(st)
    return statuses
