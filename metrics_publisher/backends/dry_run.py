"""--dry-run: one line per value that would be sent, instead of sending it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from metrics_publisher.series import Sample


class DryRunBackend:
    """Stands in for one real backend; `target` describes where the values would go."""

    def __init__(self, name: str, cloud: str | None, target: str, out: TextIO | None = None) -> None:
        self.name = f"dry-run:{name}"
        self.cloud = cloud
        self.target = target
        self._out = out

    def publish(self, samples: Sequence[Sample], at: datetime) -> int:
        out = self._out or sys.stdout
        stamp = at.isoformat(timespec="seconds")
        for s in samples:
            print(f"{stamp} would publish to {self.target} queueName={s.queue_name} value={s.value}", file=out)
        out.flush()
        return 0

    def close(self) -> None:
        pass
