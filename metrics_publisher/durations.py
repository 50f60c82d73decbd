"""Go-style durations (`5s`, `1m30s`, `250ms`), as operators already write them for the executor."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError with an example of the expected form."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError("empty duration; use a Go duration such as 5s or 1m30s")
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"{text!r} is not a Go duration; use a form such as 5s, 1m30s or 500ms")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling, for log lines and --help."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if secs or frac or not out:
        out += f"{secs + frac:g}s"
    return out
