"""Simulator throughput: simulated events per second on generated week-long and day-long traces."""

from __future__ import annotations

import time

from fleet.simulate.engine import simulate
from fleet.simulate.policy import Policy, derive_policy
from fleet.simulate.trace import GeneratorSpec, Workload, generate


def main() -> None:
    ours = Policy(jobs_per_instance_scaling=10, job_slots=2, max_replicas=40)
    cases = [
        ("steady 24h, 4 jobs/min", GeneratorSpec(Workload.STEADY, seed=1, hours=24, rate_per_minute=4)),
        ("bursty 24h, 500/burst", GeneratorSpec(Workload.BURSTY, seed=1, hours=24, burst_size=500)),
        ("daily 7d, 3 jobs/min", GeneratorSpec(Workload.DAILY, seed=1, hours=168, rate_per_minute=3)),
    ]
    for label, spec in cases:
        arrivals = generate(spec)
        for policy in (ours, derive_policy(ours, "seeds-aws")):
            start = time.perf_counter()
            out = simulate(policy, arrivals)
            elapsed = time.perf_counter() - start
            print(
                f"{label:<24} {policy.name:<10} jobs={len(arrivals):>6} events={out.events:>8} "
                f"time={elapsed:6.2f}s  {out.events / elapsed:>10,.0f} events/s"
            )


if __name__ == "__main__":
    main()
