"""`fleet simulate`: play a job-arrival trace against a scaling policy before paying for the instances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.cli.helptext import examples
from fleet.simulate.trace import Arrival, GeneratorSpec, TraceError, Workload, generate, read_csv, write_csv

POLICY = "Policy (the Terraform module variables and the autoscaler's timing)"
WORKLOAD = "Generated workload (when no TRACE is given)"


# `fleet simulate`, a single command: fleet.cli.main merges it into `fleet`.
app = typer.Typer()


@app.command(
    "simulate",
    epilog=examples(
        "fleet simulate --generate bursty --hours 8",
        "fleet simulate trace.csv --vs seeds-aws --json",
    ),
)
def simulate_cmd(
    trace: Annotated[
        Path | None, typer.Argument(help="CSV of `submit_seconds,duration_seconds` rows; omit to use --generate.")
    ] = None,
    generate_kind: Annotated[
        Workload | None,
        typer.Option("--generate", help="Generate a trace: steady, bursty or daily.", rich_help_panel=WORKLOAD),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same trace.", rich_help_panel=WORKLOAD)] = 1,
    hours: Annotated[float, typer.Option(help="Length of the generated trace.", rich_help_panel=WORKLOAD)] = 4.0,
    rate: Annotated[
        float,
        typer.Option(
            help="Mean arrivals per minute (bursty: between bursts, a fifth of it).", rich_help_panel=WORKLOAD
        ),
    ] = 1.0,
    duration: Annotated[float, typer.Option(help="Mean job duration, seconds.", rich_help_panel=WORKLOAD)] = 300.0,
    burst_size: Annotated[int, typer.Option(help="Jobs per burst (bursty).", rich_help_panel=WORKLOAD)] = 100,
    burst_every: Annotated[
        float, typer.Option(help="Seconds between bursts (bursty).", rich_help_panel=WORKLOAD)
    ] = 3600.0,
    save_trace: Annotated[
        Path | None, typer.Option(help="Write the trace used to this CSV file.", rich_help_panel=WORKLOAD)
    ] = None,
    jobs_per_instance: Annotated[
        int, typer.Option("--jobs-per-instance", help="jobs_per_instance_scaling.", rich_help_panel=POLICY)
    ] = 10,
    min_replicas: Annotated[int, typer.Option(help="min_replicas.", rich_help_panel=POLICY)] = 0,
    max_replicas: Annotated[int, typer.Option(help="max_replicas.", rich_help_panel=POLICY)] = 20,
    slots: Annotated[
        int, typer.Option(help="Job slots per instance (EXECUTOR_MAXIMUM_NUM_JOBS).", rich_help_panel=POLICY)
    ] = 1,
    boot: Annotated[float, typer.Option(help="Instance boot time, seconds.", rich_help_panel=POLICY)] = 60.0,
    publish_interval: Annotated[
        float, typer.Option(help="Metric publish interval, seconds.", rich_help_panel=POLICY)
    ] = 5.0,
    metric_period: Annotated[
        float, typer.Option(help="Autoscaler evaluation period, seconds.", rich_help_panel=POLICY)
    ] = 60.0,
    evaluation_delay: Annotated[
        float, typer.Option(help="Metric visibility lag, seconds.", rich_help_panel=POLICY)
    ] = 0.0,
    statistic: Annotated[
        str, typer.Option(help="maximum (as our AWS module's alarm) or average of each period.", rich_help_panel=POLICY)
    ] = "maximum",
    scale_out_cooldown: Annotated[float, typer.Option(help="Seconds.", rich_help_panel=POLICY)] = 60.0,
    scale_in_cooldown: Annotated[float, typer.Option(help="Seconds.", rich_help_panel=POLICY)] = 300.0,
    mode: Annotated[
        str, typer.Option(help="target (jump to the target) or step (move by one per period).", rich_help_panel=POLICY)
    ] = "target",
    name: Annotated[str, typer.Option(help="Label of this policy in the report.", rich_help_panel=POLICY)] = "ours",
    vs: Annotated[
        str | None,
        typer.Option(
            help="Second policy to compare: a preset (seeds-aws) and/or key=value overrides of the first, "
            "e.g. 'seeds-aws' or 'jobs_per_instance_scaling=5,max_replicas=20'.",
            rich_help_panel=POLICY,
        ),
    ] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Simulate queue waits, instance-hours and idle share of a scaling policy over a job-arrival trace.

    The policy is the one the Terraform modules configure:
    desired instances = ceil(queue size / jobs_per_instance_scaling),
    clamped between min_replicas and max_replicas. The queue size
    (queued + processing jobs) is published every --publish-interval
    seconds; the autoscaler reads its --statistic over each --metric-period.
    Scale-in retires instances: a busy executor finishes its jobs first.
    """
    # The policy models (pydantic) and the engine are imported here, so other commands do not pay for them.
    from fleet.simulate.engine import simulate
    from fleet.simulate.policy import PolicyError, derive_policy, make_policy
    from fleet.simulate.report import as_json, as_table, plot

    try:
        policy = make_policy(
            {
                "name": name,
                "mode": mode,
                "jobs_per_instance_scaling": jobs_per_instance,
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "job_slots": slots,
                "boot_seconds": boot,
                "publish_interval": publish_interval,
                "metric_period": metric_period,
                "evaluation_delay": evaluation_delay,
                "statistic": statistic,
                "scale_out_cooldown": scale_out_cooldown,
                "scale_in_cooldown": scale_in_cooldown,
            }
        )
        policies = [policy] if vs is None else [policy, derive_policy(policy, vs)]
        arrivals, trace_info = _load_trace(
            trace,
            generate_kind,
            GeneratorSpec(generate_kind or Workload.STEADY, seed, hours, rate, duration, burst_size, burst_every),
        )
    except (PolicyError, TraceError) as exc:
        fail(str(exc), EXIT_CONFIG)
    if save_trace is not None:
        write_csv(arrivals, save_trace)
    outcomes = [simulate(p, arrivals) for p in policies]
    if plot_path is not None:
        plot(outcomes, plot_path)
    if as_json_output:
        typer.echo(json.dumps(as_json(outcomes, trace_info), indent=2))
        return
    typer.echo(f"trace: {trace_info['source']}, {len(arrivals)} jobs over {trace_info['span_seconds'] / 3600:.2f} h")
    typer.echo(as_table(outcomes))
    if plot_path is not None:
        typer.echo(f"plot written to {plot_path}")


def _load_trace(path: Path | None, kind: Workload | None, spec: GeneratorSpec) -> tuple[list[Arrival], dict[str, Any]]:
    if path is not None and kind is not None:
        raise TraceError("give either a TRACE file or --generate, not both")
    if path is None and kind is None:
        raise TraceError(
            "no trace: pass a CSV file (submit_seconds,duration_seconds) or --generate steady|bursty|daily"
        )
    if path is not None:
        arrivals = read_csv(path)
        info: dict[str, Any] = {"source": str(path)}
    else:
        arrivals = generate(spec)
        if not arrivals:
            raise TraceError("the generated trace is empty: raise --rate or --hours")
        info = {
            "source": f"generated {spec.workload} (seed {spec.seed})",
            "generator": spec.__dict__ | {"workload": str(spec.workload)},
        }
    info["jobs"] = len(arrivals)
    info["span_seconds"] = arrivals[-1].submit - arrivals[0].submit
    return arrivals, info
