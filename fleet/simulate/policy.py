"""The scaling policy the simulator plays: the knobs of the Terraform modules plus the cloud autoscaler's timing."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from executor_agent.settings_common import Problem, one_line


class ScalingMode(StrEnum):
    # Our modules: desired jumps straight to ceil(queue size / jobs_per_instance_scaling).
    TARGET = "target"
    # The seeds' AWS module: desired moves toward that value by at most `step_size` per evaluation.
    STEP = "step"


class Statistic(StrEnum):
    # Our AWS module's alarm reads the period's Maximum; average is there to try smoother policies.
    MAXIMUM = "maximum"
    AVERAGE = "average"


class PolicyError(ValueError):
    """A policy specification that cannot be used; the message names the key and the fix."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="ours", description="Label used in reports and plots.")
    mode: ScalingMode = Field(
        default=ScalingMode.TARGET, description="target: jump to the target; step: move by step_size."
    )
    jobs_per_instance_scaling: int = Field(default=10, ge=1, description="Queue size one instance is meant to absorb.")
    min_replicas: int = Field(default=0, ge=0, description="Lower bound of the desired instance count.")
    max_replicas: int = Field(default=20, ge=1, description="Upper bound of the desired instance count.")
    job_slots: int = Field(default=1, ge=1, description="Jobs one instance runs at once (EXECUTOR_MAXIMUM_NUM_JOBS).")
    boot_seconds: float = Field(
        default=60.0, ge=0, description="From launch until the executor dequeues its first job."
    )
    publish_interval: float = Field(
        default=5.0, gt=0, description="How often the metrics publisher writes the queue size."
    )
    metric_period: float = Field(
        default=60.0, gt=0, description="Autoscaler evaluation period; `statistic` condenses the period's samples."
    )
    statistic: Statistic = Field(default=Statistic.MAXIMUM, description="maximum or average of the period.")
    evaluation_delay: float = Field(default=0.0, ge=0, description="Lag between a sample being written and being seen.")
    scale_out_cooldown: float = Field(default=60.0, ge=0, description="No scale-out for this long after a scale-out.")
    scale_in_cooldown: float = Field(
        default=300.0, ge=0, description="No scale-in for this long after any scaling action."
    )
    step_size: int = Field(default=1, ge=1, description="Largest change per evaluation in step mode.")

    @model_validator(mode="after")
    def _bounds(self) -> Policy:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas}); "
                "raise max_replicas or lower min_replicas"
            )
        return self

    def target(self, queue_size: float) -> int:
        """The module's formula: ceil(queue size / jobs_per_instance_scaling) clamped to the replica bounds."""
        wanted = math.ceil(queue_size / self.jobs_per_instance_scaling - 1e-9) if queue_size > 0 else 0
        return max(self.min_replicas, min(self.max_replicas, wanted))

    def next_desired(self, current: int, queue_size: float) -> int:
        target = self.target(queue_size)
        if self.mode is ScalingMode.TARGET:
            return target
        if target > current:
            return min(target, current + self.step_size)
        return max(target, current - self.step_size)


# The seeds' AWS module as published: one instance more or less per minute, one-minute cooldowns.
PRESETS: dict[str, dict[str, object]] = {
    "seeds-aws": {
        "name": "seeds-aws",
        "mode": "step",
        "step_size": 1,
        "metric_period": 60.0,
        "scale_out_cooldown": 60.0,
        "scale_in_cooldown": 60.0,
    },
}


def policy_error_line(exc: ValidationError, where: str) -> str:
    def render(p: Problem) -> str:
        key = p.key or "policy"
        if p.kind == "extra_forbidden":
            msg = f"is not a policy key; use one of {', '.join(Policy.model_fields)}"
        elif p.has_input and key != "policy":
            msg = f"{p.input!r}: {p.msg}"
        else:
            msg = p.msg
        return f"{where} {key} {msg}"

    return one_line(exc, render)


def make_policy(values: dict[str, object], where: str = "policy") -> Policy:
    try:
        return Policy.model_validate(values)
    except ValidationError as exc:
        raise PolicyError(policy_error_line(exc, where)) from None


def derive_policy(base: Policy, spec: str) -> Policy:
    """`--vs` syntax: a preset name and/or comma-separated key=value overrides applied on top of `base`."""
    values: dict[str, object] = base.model_dump()
    overrides: dict[str, object] = {}
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        if "=" not in raw:
            if raw not in PRESETS:
                raise PolicyError(
                    f"--vs {raw!r} is neither a preset ({', '.join(PRESETS)}) nor key=value; "
                    "e.g. --vs seeds-aws or --vs jobs_per_instance_scaling=5"
                )
            values.update(PRESETS[raw])
            continue
        key, _, value = raw.partition("=")
        overrides[key.strip()] = value.strip()
    values.update(overrides)
    if values.get("name") == base.name and "name" not in overrides:
        values["name"] = spec
    return make_policy(values, where="--vs")
