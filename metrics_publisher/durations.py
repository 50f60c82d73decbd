"""Durations of the publisher's settings: the syntax of executor_agent/protocol/durations.py (Go's), with the two
rules its settings add: an empty value is an error that says what to write, and no interval is negative."""

from __future__ import annotations

from executor_agent.protocol import durations
from executor_agent.protocol.durations import format_duration

__all__ = ["format_duration", "parse_duration"]


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError with an example of the expected form."""
    if not text.strip():
        raise ValueError("empty duration; use a Go duration such as 5s or 1m30s")
    example = "use a form such as 5s, 1m30s or 500ms"
    if text.strip().startswith("-"):
        raise ValueError(f"{text!r} is negative; {example}")
    try:
        return durations.parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a Go duration; {example}") from None
