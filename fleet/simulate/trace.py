"""Job-arrival traces: read from CSV (submit time, duration) or generated from a seeded random source."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

COLUMNS = ("submit_seconds", "duration_seconds")
DAY = 86400.0


class TraceError(ValueError):
    """A trace that cannot be simulated; the message names the line and column."""


@dataclass(frozen=True, slots=True)
class Arrival:
    submit: float
    duration: float


class Workload(StrEnum):
    STEADY = "steady"
    BURSTY = "bursty"
    DAILY = "daily"


def _number(text: str, path: Path, line: int, column: int) -> float:
    name = COLUMNS[column - 1]
    try:
        value = float(text)
    except ValueError:
        raise TraceError(
            f"{path} line {line}, column {column} ({name}): {text.strip()!r} is not a number of seconds"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{path} line {line}, column {column} ({name}): {text.strip()!r} must be a finite number >= 0")
    return value


def read_csv(path: Path) -> list[Arrival]:
    """Rows `submit_seconds,duration_seconds`; an optional header line and `#` comments are skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    arrivals: list[Arrival] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if line_no == 1 and row[0].strip() == COLUMNS[0]:
            continue
        if len(row) != 2:
            raise TraceError(f"{path} line {line_no}: expected 2 columns ({', '.join(COLUMNS)}), found {len(row)}")
        submit = _number(row[0], path, line_no, 1)
        duration = _number(row[1], path, line_no, 2)
        arrivals.append(Arrival(submit, duration))
    if not arrivals:
        raise TraceError(f"{path} holds no jobs; write one `submit_seconds,duration_seconds` row per job")
    arrivals.sort(key=lambda a: a.submit)
    return arrivals


def write_csv(arrivals: list[Arrival], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for a in arrivals:
            writer.writerow([f"{a.submit:.3f}", f"{a.duration:.3f}"])


@dataclass(frozen=True)
class GeneratorSpec:
    workload: Workload
    seed: int = 1
    hours: float = 4.0
    rate_per_minute: float = 1.0
    mean_duration: float = 300.0
    burst_size: int = 100
    burst_every: float = 3600.0

    def validate(self) -> None:
        checks = [
            ("--hours", self.hours > 0, self.hours, "a positive number of hours"),
            ("--rate", self.rate_per_minute > 0, self.rate_per_minute, "a positive number of jobs per minute"),
            ("--duration", self.mean_duration > 0, self.mean_duration, "a positive number of seconds"),
            ("--burst-size", self.burst_size >= 1, self.burst_size, "at least 1"),
            ("--burst-every", self.burst_every > 0, self.burst_every, "a positive number of seconds"),
        ]
        for flag, ok, value, fix in checks:
            if not ok:
                raise TraceError(f"{flag} {value!r} is invalid: use {fix}")


def _duration(rng: random.Random, mean: float) -> float:
    # Log-normal with sigma 0.6: mostly near the mean, with the long tail real CI jobs have.
    sigma = 0.6
    mu = math.log(mean) - sigma * sigma / 2
    return round(max(1.0, rng.lognormvariate(mu, sigma)), 1)


def _poisson(rng: random.Random, start: float, end: float, rate_per_second: float) -> list[float]:
    times = []
    t = start + rng.expovariate(rate_per_second)
    while t < end:
        times.append(t)
        t += rng.expovariate(rate_per_second)
    return times


def generate(spec: GeneratorSpec) -> list[Arrival]:
    spec.validate()
    rng = random.Random(spec.seed)
    end = spec.hours * 3600.0
    rate = spec.rate_per_minute / 60.0
    if spec.workload is Workload.STEADY:
        times = _poisson(rng, 0.0, end, rate)
    elif spec.workload is Workload.BURSTY:
        # A fifth of the load trickles in; the rest lands in bursts spread over one minute.
        times = _poisson(rng, 0.0, end, rate / 5)
        t = 0.0
        while t < end:
            times.extend(t + rng.uniform(0, 60) for _ in range(spec.burst_size))
            t += spec.burst_every
    else:
        # Non-homogeneous Poisson by thinning: quiet at midnight, peak at midday, `rate` on average.
        peak = rate * 1.9
        times = [
            t
            for t in _poisson(rng, 0.0, end, peak)
            if rng.random() * peak < rate * (1 - 0.9 * math.cos(2 * math.pi * t / DAY))
        ]
    times.sort()
    return [Arrival(round(t, 3), _duration(rng, spec.mean_duration)) for t in times]
