"""The simulator against traces small enough to work out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from fleet.simulate.engine import simulate
from fleet.simulate.policy import PRESETS, Policy, ScalingMode, Statistic, derive_policy, make_policy
from fleet.simulate.report import percentile, summarize
from fleet.simulate.trace import Arrival

# Metric every 5 s; the autoscaler evaluates at t = 60, 120, 180, ... taking the maximum of each window (as our
# AWS module's alarm does).
# A window for the evaluation at t covers samples published in (t - 60, t].
BURST_POLICY = Policy(
    jobs_per_instance_scaling=10,
    job_slots=10,
    min_replicas=0,
    max_replicas=20,
    boot_seconds=60,
    scale_out_cooldown=0,
    scale_in_cooldown=0,
)


def burst(jobs: int, duration: float) -> list[Arrival]:
    return [Arrival(0.0, duration) for _ in range(jobs)]


def test_burst_of_100_jobs_target_policy() -> None:
    # t=0: 100 jobs arrive; every sample up to t=60 reads 100. Evaluation at 60: ceil(100/10) = 10 instances,
    # launched at 60, booted at 120; each takes 10 jobs (10 slots), so every job waits exactly 120 s.
    # Jobs finish at 120 + 300 = 420. Evaluation at 420 still sees 100 (samples 365..415) -> 10.
    # Evaluation at 480 sees only zeros -> desired 0; the idle instances power off at 480.
    # Instance-hours: 10 x (480 - 60) s = 4200 s = 1.1667 h. Busy: 100 x 300 = 30000 slot-s of
    # 10 x 10 x 420 = 42000 slot-s, idle 12000/42000 = 0.2857.
    out = simulate(BURST_POLICY, burst(100, 300))
    s = summarize(out)
    assert out.completed == 100
    assert s["wait_p50_seconds"] == s["wait_p95_seconds"] == s["wait_max_seconds"] == 120.0
    assert s["peak_instances"] == 10
    assert out.instance_seconds == pytest.approx(4200.0)
    assert s["instance_hours"] == pytest.approx(1.1667)
    assert s["idle_fraction"] == pytest.approx(0.2857)
    assert s["simulated_seconds"] == 480.0
    assert s["scale_actions"] == 2


def test_scale_in_cooldown_keeps_idle_instances() -> None:
    # Same burst, but no scale-in within 600 s of the scale-out at 60: the idle fleet lives until the
    # evaluation at 660 -> 10 x (660 - 60) s = 6000 s.
    policy = BURST_POLICY.model_copy(update={"scale_in_cooldown": 600.0})
    out = simulate(policy, burst(100, 300))
    assert out.instance_seconds == pytest.approx(6000.0)
    assert summarize(out)["wait_max_seconds"] == 120.0


def test_burst_step_policy_of_the_seeds() -> None:
    # One instance more per minute: instance k (k = 1..10) is launched at 60k and boots at 60k + 60, then takes
    # 10 jobs. Jobs last an hour so the queue stays at 100 during the ramp. Waits: ten each of 120, 180, ..., 660.
    # Nearest-rank p50 = 50th value = k=5 -> 360; p95 = 95th value = k=10 -> 660; mean = (120 + 660)/2 = 390.
    policy = derive_policy(BURST_POLICY, "seeds-aws")
    assert policy.mode is ScalingMode.STEP and policy.name == "seeds-aws"
    s = summarize(simulate(policy, burst(100, 3600)))
    assert (s["wait_p50_seconds"], s["wait_p95_seconds"], s["wait_max_seconds"]) == (360.0, 660.0, 660.0)
    assert s["wait_mean_seconds"] == 390.0
    assert s["peak_instances"] == 10


def test_target_beats_step_on_the_same_burst() -> None:
    arrivals = burst(100, 3600)
    ours = summarize(simulate(BURST_POLICY, arrivals))
    seeds = summarize(simulate(derive_policy(BURST_POLICY, "seeds-aws"), arrivals))
    assert ours["wait_p95_seconds"] == 120.0
    assert seeds["wait_p95_seconds"] - ours["wait_p95_seconds"] == 540.0


def test_scale_in_retires_busy_instances_without_killing_jobs() -> None:
    # jobs_per_instance 2, 2 slots, instant boot. Jobs at t=0: 1000 s, 100 s, 1000 s, 100 s.
    # Evaluation at 60: ceil(4/2) = 2 instances, ready at 60; each gets one long and one short job.
    # Short jobs end at 160; evaluation at 180 still sees 4 in its window (125..155) -> still 2;
    # evaluation at 240 sees 2 -> desired 1 while both instances run a long job: one retires, finishes its job
    # at 1060 and powers off then (1000 s). The other ends when desired reaches 0: the evaluation at 1080
    # still sees 2 (1025..1055) -> 1; at 1140 -> 0, so 1080 s. Total 2080 instance-seconds.
    policy = Policy(jobs_per_instance_scaling=2, job_slots=2, boot_seconds=0, scale_out_cooldown=0, scale_in_cooldown=0)
    arrivals = [Arrival(0, 1000), Arrival(0, 100), Arrival(0, 1000), Arrival(0, 100)]
    out = simulate(policy, arrivals)
    assert out.completed == 4
    assert out.busy_slot_seconds == 2200.0
    assert out.waits == [60.0, 60.0, 60.0, 60.0]
    assert out.instance_seconds == pytest.approx(2080.0)


def test_min_replicas_are_warm_and_stay() -> None:
    # Two warm instances: jobs arriving at 10 s start at once; the fleet never goes below two.
    policy = Policy(min_replicas=2, max_replicas=4)
    out = simulate(policy, [Arrival(10, 30), Arrival(10, 30)])
    assert out.waits == [0.0, 0.0]
    assert min(s.running for s in out.samples) == 2


def test_evaluation_delay_postpones_reaction() -> None:
    # A single job at t=100 on an empty fleet. Without delay the evaluation at 120 sees it -> launch at 120,
    # boot 60 -> wait 80. With a 90 s delay the evaluation at 120 sees samples up to 30 only, the one at 180
    # sees up to 90, the one at 240 sees (90, 150] -> launch at 240, start at 300, wait 200.
    base = Policy(boot_seconds=60, scale_out_cooldown=0)
    assert simulate(base, [Arrival(100, 10)]).waits == [80.0]
    delayed = base.model_copy(update={"evaluation_delay": 90.0})
    assert simulate(delayed, [Arrival(100, 10)]).waits == [200.0]


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0


def test_target_formula_clamps() -> None:
    p = Policy(jobs_per_instance_scaling=20, min_replicas=1, max_replicas=5)
    assert [p.target(q) for q in (0, 1, 20, 21, 400)] == [1, 1, 1, 2, 5]


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"max_replicas": 1, "min_replicas": 3}, "raise max_replicas or lower min_replicas"),
        ({"jobs_per_instance_scaling": 0}, "jobs_per_instance_scaling 0"),
        ({"boot": 3}, "boot is not a policy key"),
    ],
)
def test_bad_policy_names_the_key(values: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make_policy(values)


def test_vs_overrides_and_presets() -> None:
    other = derive_policy(BURST_POLICY, "jobs_per_instance_scaling=5,max_replicas=30")
    assert (other.jobs_per_instance_scaling, other.max_replicas, other.job_slots) == (5, 30, 10)
    assert other.name == "jobs_per_instance_scaling=5,max_replicas=30"
    assert "seeds-aws" in PRESETS
    with pytest.raises(ValueError, match="neither a preset"):
        derive_policy(BURST_POLICY, "seeds-gcp")


def test_average_statistic_scales_in_earlier() -> None:
    # The burst again with 330 s jobs: they end at 120 + 330 = 450. The evaluation at 480 sees samples 425..445
    # of 100 (5) and 450..480 of 0 (7). Maximum: 100 -> keep 10; all 10 power off at 540: 10 x 480 s = 4800 s.
    # Average: 500/12 = 41.7 -> ceil(4.17) = 5, so 5 idle instances power off at 480 and 5 at 540:
    # 5 x 420 + 5 x 480 = 4500 s.
    arrivals = burst(100, 330)
    assert simulate(BURST_POLICY, arrivals).instance_seconds == pytest.approx(4800.0)
    average = BURST_POLICY.model_copy(update={"statistic": Statistic.AVERAGE})
    assert simulate(average, arrivals).instance_seconds == pytest.approx(4500.0)
