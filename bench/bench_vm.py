"""VM-per-job overhead against the Docker runtime, on the same one-step job, through the runtimes' per-job seam.

Each run: open_job (image conversion for the VM runtime, boot), the step, close (teardown), timed around the
runtime's own calls on one private Docker Engine. Figure: ratio of medians (VM / Docker) in one run, with the VM's
split: image conversion cold (the first run, empty cache) and cached, boot (to the guest agent's READY frame),
step, teardown (power-off, disk and tap removal).

This measures QEMU microvm in SOFTWARE EMULATION (TCG): the machine has no hardware virtualisation. With KVM a
microVM boots in well under a second (Firecracker's own anchor: <= 125 ms to the guest's init; Sourcegraph's VM setup
took 6-10 s per job); TCG is tens of times slower, so the ratio here is an upper bound, not the production figure.
The network rules and the tap are made inside a throwaway network namespace.

Run: .venv/bin/python bench/bench_vm.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executor_agent.job import StopSignal  # noqa: E402
from executor_agent.logstream import LogEntry  # noqa: E402
from executor_agent.protocol.jobs import JobSpec  # noqa: E402
from executor_agent.redaction import Redactor  # noqa: E402
from executor_agent.runtimes.base import StepRun  # noqa: E402
from executor_agent.runtimes.docker import DockerRuntime  # noqa: E402
from executor_agent.runtimes.vm import VMRuntime  # noqa: E402
from executor_agent.workspace import create  # noqa: E402
from tests.executor_agent import vm_helpers as vh  # noqa: E402
from tests.support.docker_engine import start_docker_engine  # noqa: E402

STEP = {"image": "busybox:latest", "commands": ["echo hello from the step"]}


def one_job(runtime: DockerRuntime | VMRuntime, root: Path) -> dict[str, float]:
    job = JobSpec(id=1, queue="batches", dockerSteps=[STEP])  # type: ignore[list-item]
    ws = create(root, "executor", 1, "bench")
    began = time.perf_counter()
    sandbox = runtime.open_job(job, ws)
    opened = time.perf_counter()
    run = StepRun("step.docker.0", STEP["image"], list(STEP["commands"]), "", [], 1)  # type: ignore[arg-type]
    entry = LogEntry(run.key, sandbox.describe(run), Redactor({}), 1 << 20)
    result = sandbox.run_step(run, entry, StopSignal())
    stepped = time.perf_counter()
    sandbox.close()
    ended = time.perf_counter()
    ws.remove()
    if result.exit_code != 0 or "hello from the step" not in entry.output():
        raise RuntimeError(f"the step failed: {result} {entry.output()}")
    figures = {"total": ended - began, "open": opened - began, "step": stepped - opened, "close": ended - stepped}
    figures.update(getattr(sandbox, "timings", {}))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="jobs per runtime (the VM's first is the cold one)")
    args = parser.parse_args()
    vh.require_tools()
    engine = start_docker_engine()
    work = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    netns = vh.netns()
    ns = next(netns)
    try:
        settings = vh.vm_settings(work / "assets", work / "work", engine.host, EXECUTOR_JOB_NUM_CPUS="1")
        vh.prepare_assets(settings)
        docker_settings = vh.vm_settings(
            work / "assets", work / "work", engine.host, EXECUTOR_USE_FIRECRACKER="false", EXECUTOR_JOB_NUM_CPUS="1"
        )
        docker_rt = DockerRuntime(docker_settings, "bench")
        vm_rt = VMRuntime(settings, "bench", netns=ns)
        one_job(docker_rt, work / "work")  # warm the engine once
        docker_runs = [one_job(docker_rt, work / "work") for _ in range(args.runs)]
        vm_runs = [one_job(vm_rt, work / "work") for _ in range(args.runs)]
    finally:
        next(netns, None)
        engine.stop()
    docker_median = statistics.median(r["total"] for r in docker_runs)
    vm_median = statistics.median(r["total"] for r in vm_runs)
    cold, cached = vm_runs[0], vm_runs[1:] or vm_runs
    print("VM runtime: QEMU microvm under TCG software emulation (no KVM on this host); Docker: the same engine")
    print(f"docker runtime, one-step job: median {docker_median:.2f}s over {len(docker_runs)} runs")
    print(f"VM runtime, one-step job:     median {vm_median:.2f}s over {len(vm_runs)} runs")
    print(f"ratio of medians (VM / Docker): {vm_median / docker_median:.1f}x")
    print(f"  image conversion: cold {cold.get('image_converted', 0):.2f}s, "
          f"cached {statistics.median(r.get('image_cached', 0) for r in cached):.2f}s")  # fmt: skip
    for part, key in (("prepare (disks, initrd)", "prepare"), ("boot to READY", "boot"), ("step", "step"),
                      ("teardown", "close")):  # fmt: skip
        print(f"  {part}: median {statistics.median(r.get(key, 0) for r in vm_runs):.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
