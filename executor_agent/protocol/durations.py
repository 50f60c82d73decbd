"""Durations and sizes, the one syntax of both sides (docs/protocol.md, "Timings").

Settings are written as Go writes them: durations `30m`, `1h30m`, `1.5s`, `500ms`, sizes `12G`, `12GB`, `512M`;
people read durations in the short form of `human_duration`: `0.4s`, `27s`, `2m05s`, `3h07m`.

Decided once for every caller: an empty string is not a duration (a setting left empty means its default, which
is the settings' business, not the parser's); a sign is accepted as Go's ParseDuration accepts it, and a setting
that cannot be negative says so itself; `human_duration` shows a negative age (clock skew) as zero.
"""

from __future__ import annotations

import re

MISSING = "—"  # what people see for a value that is not known (never measured), instead of a made-up zero

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; a bare `0` is allowed as Go allows it. Raises ValueError."""
    value = text.strip()
    if value in ("0", "-0", "+0"):
        return 0.0
    sign = -1.0 if value.startswith("-") else 1.0
    body = value.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"{text!r} is not a duration; use Go syntax such as 30m, 1h30m, 1s or 500ms")
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 1800 -> `30m0s`, 5400 -> `1h30m0s`, 0.5 -> `500ms`."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    nanos = round(abs(seconds) * 1e9)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _trim(rest / 1e9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def human_duration(seconds: float | None) -> str:
    """The short form the CLI and the dashboard print: 0.4s, 27s, 2m05s, 3h07m, 2d04h; MISSING for None."""
    if seconds is None:
        return MISSING
    seconds = max(seconds, 0.0)  # an age computed across two clocks may come out slightly negative
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def parse_size(text: str) -> int:
    """Bytes in a size such as `12G`, `12GB`, `12GiB` or `512M` (binary multiples, as Docker reads them)."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size; use e.g. 12G, 12GB, 512M or a number of bytes")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWERS[m.group(2).lower()])


def format_size(size: int) -> str:
    """The shortest exact spelling of a size: 12884901888 -> `12G`."""
    for unit, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        if size and size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return str(size)
