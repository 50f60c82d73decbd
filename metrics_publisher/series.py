"""What is published each round: one value per `queueName`, scaled by each cloud's share of the queue."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metrics_publisher.config import Allocations, QueueGroups


@dataclass(frozen=True)
class Sample:
    """One time series point: the `queueName` label and the value written for it."""

    queue_name: str
    value: int


def group_name(queues: Iterable[str]) -> str:
    """The `queueName` of a multi-queue fleet: its queue names sorted and joined by `_` (docs/metrics-publisher.md)."""
    return "_".join(sorted(queues))


def queue_totals(sizes: Mapping[str, int], groups: QueueGroups) -> dict[str, int]:
    """Every queue on its own plus every multi-queue group with the summed size, keyed by `queueName`."""
    totals = dict(sizes)
    for group in groups:
        totals[group_name(group)] = sum(sizes.get(q, 0) for q in group)
    return dict(sorted(totals.items()))


def share(allocations: Allocations, queue_name: str, cloud: str | None) -> float:
    """A cloud's share of a queue; queues absent from EXECUTOR_ALLOCATIONS go wholly to every cloud."""
    if cloud is None or queue_name not in allocations:
        return 1.0
    return allocations[queue_name].get(cloud, 0.0)


def samples_for(totals: Mapping[str, int], allocations: Allocations, cloud: str | None) -> list[Sample]:
    """The samples a backend publishes. Rounded up so that a single queued job still asks for a machine."""
    out = []
    for name, size in totals.items():
        scaled = size * share(allocations, name, cloud)
        # The epsilon keeps float noise such as 3 * 0.1 * 10 from adding a phantom machine.
        out.append(Sample(name, math.ceil(scaled - 1e-9) if scaled > 0 else 0))
    return out
