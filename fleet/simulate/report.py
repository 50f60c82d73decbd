"""Figures from simulation outcomes: wait percentiles, cost, idle share; as a table, JSON, or a PNG plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fleet.simulate.engine import Outcome


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct% of the values at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(outcome: Outcome) -> dict[str, Any]:
    waits = outcome.waits
    slot_seconds = outcome.slot_seconds
    idle = 1 - outcome.busy_slot_seconds / slot_seconds if slot_seconds > 0 else 0.0
    return {
        "jobs": len(waits),
        "wait_p50_seconds": round(percentile(waits, 50), 3),
        "wait_p95_seconds": round(percentile(waits, 95), 3),
        "wait_max_seconds": round(max(waits, default=0.0), 3),
        "wait_mean_seconds": round(sum(waits) / len(waits), 3) if waits else 0.0,
        "instance_hours": round(outcome.instance_seconds / 3600, 4),
        "idle_fraction": round(idle, 4),
        "peak_instances": outcome.peak_instances,
        "scale_actions": outcome.scale_actions,
        "simulated_seconds": round(outcome.end_time, 3),
        "events": outcome.events,
    }


def as_json(outcomes: list[Outcome], trace: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "trace": trace,
        "policies": [{"policy": o.policy.model_dump(mode="json"), "result": summarize(o)} for o in outcomes],
    }
    if len(outcomes) == 2:
        a, b = (summarize(o) for o in outcomes)
        doc["difference"] = {
            key: round(b[key] - a[key], 4)
            for key in ("wait_p50_seconds", "wait_p95_seconds", "wait_max_seconds", "instance_hours", "idle_fraction")
        }
    return doc


ROWS = [
    ("jobs", "jobs", "{:.0f}"),
    ("queue wait p50", "wait_p50_seconds", "{:.1f} s"),
    ("queue wait p95", "wait_p95_seconds", "{:.1f} s"),
    ("queue wait max", "wait_max_seconds", "{:.1f} s"),
    ("instance-hours", "instance_hours", "{:.2f}"),
    ("idle fraction", "idle_fraction", "{:.1%}"),
    ("peak instances", "peak_instances", "{:.0f}"),
    ("scaling actions", "scale_actions", "{:.0f}"),
]


def as_table(outcomes: list[Outcome]) -> str:
    summaries = [summarize(o) for o in outcomes]
    header = ["", *(o.policy.name for o in outcomes)]
    body = [[label, *(fmt.format(s[key]) for s in summaries)] for label, key, fmt in ROWS]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def plot(outcomes: list[Outcome], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(outcomes), 1, figsize=(11, 3.6 * len(outcomes)), sharex=True, squeeze=False)
    for ax, outcome in zip(axes[:, 0], outcomes, strict=True):
        minutes = [s.time / 60 for s in outcome.samples]
        ax.plot(minutes, [s.queue_size for s in outcome.samples], color="tab:gray", label="queue size")
        ax.set_ylabel("queue size (jobs)")
        twin = ax.twinx()
        twin.step(minutes, [s.desired for s in outcome.samples], where="post", color="tab:blue", label="desired")
        twin.step(minutes, [s.running for s in outcome.samples], where="post", color="tab:green", label="running")
        twin.set_ylabel("instances")
        twin.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
        s = summarize(outcome)
        ax.set_title(
            f"{outcome.policy.name}: wait p95 {s['wait_p95_seconds']:.0f} s, "
            f"{s['instance_hours']:.2f} instance-hours, idle {s['idle_fraction']:.0%}"
        )
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper right")
    axes[-1, 0].set_xlabel("time (minutes)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
