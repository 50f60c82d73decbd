"""How every `fleet` command prints: tables that stay whole, one duration format, `—` for missing values, JSON.

JSON output uses the API's spelling (camelCase keys), whatever the command.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from executor_agent.protocol.durations import MISSING
from executor_agent.protocol.durations import human_duration as duration

# In a pipe rich would wrap at 80 columns; tables are printed at their natural width there instead.
console = Console(width=None if sys.stdout.isatty() else 100_000, soft_wrap=not sys.stdout.isatty())
STATE_STYLE = {
    "completed": "green",
    "failed": "red",
    "canceled": "red",
    "processing": "blue",
    "errored": "yellow",
    "healthy": "green",
    "late": "yellow",
    "crashed": "red",
    "drained": "dim",
}


def table(*columns: str) -> Table:
    """A table whose cells are folded, never cut with `…`, when the terminal is narrow."""
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def show(value: Any) -> str:
    return MISSING if value is None or value == "" else str(value)


def styled(word: str) -> str:
    """A state or health word, coloured when the terminal shows colours; the word itself always carries it."""
    style = STATE_STYLE.get(word)
    return f"[{style}]{word}[/]" if style else word


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def when(value: str | None, now: datetime | None = None) -> str:
    """A timestamp as `2026-01-01 12:00:00Z (3m05s ago)`: UTC, said so, and how long ago."""
    moment = parse_time(value)
    if moment is None:
        return MISSING
    ago = ((now or datetime.now(UTC)) - moment).total_seconds()
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({duration(max(ago, 0))} ago)"


def camel(data: Any) -> Any:
    """snake_case keys (Python records) as the API's camelCase, recursively."""
    if isinstance(data, dict):
        return {_camel_key(str(k)): camel(v) for k, v in data.items()}
    if isinstance(data, list):
        return [camel(v) for v in data]
    return data


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


__all__ = ["MISSING", "camel", "console", "duration", "json_out", "show", "styled", "table", "when"]
