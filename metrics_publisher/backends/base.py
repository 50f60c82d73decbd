"""The one interface every backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from metrics_publisher.series import Sample

T = TypeVar("T")


class Backend(Protocol):
    name: str
    """Short name used in logs, /healthz and the publisher's own metrics."""
    cloud: str | None
    """Key of EXECUTOR_ALLOCATIONS this backend's values are scaled by; None publishes whole queue sizes."""

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        """Send one round; returns the number of API calls made. Raises on failure."""
        ...

    def close(self) -> None: ...


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items: requests are split only at an API's limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
