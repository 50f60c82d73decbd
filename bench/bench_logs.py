"""Log volume: a step printing a lot, read into a log entry by the agent, against the same step read through a pipe.

The step prints MB megabytes (default 50) in 100-byte lines, or as one line with --no-newlines. "bare" runs it with
stdout on a pipe that a reader drains and throws away (the same 64 KiB reads as the agent's pump); "agent" runs it
with the agent's own run_host_command into a LogEntry with the default cap (EXECUTOR_MAX_LOG_ENTRY_BYTES, 4 MiB)
and a redactor holding two secrets, as for a job (its token and the executor secret). Figures: median wall time of
each over --runs, the ratio (goal <= 1.5), and the agent process's CPU seconds per run.

Run: .venv/bin/python bench/bench_logs.py [--mb 50] [--runs 3] [--no-newlines]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executor_agent.job import StopSignal  # noqa: E402
from executor_agent.logstream import LogEntry  # noqa: E402
from executor_agent.redaction import Redactor  # noqa: E402
from executor_agent.runtimes.base import run_host_command  # noqa: E402

CAP = 4 * 1024 * 1024
SECRETS = {"tuedJsWlgTWLWi9ti8Swah1JJ6aSgIRTqvTcN9MEgcw": "******", "frontend-password-0123456789": "******"}


def script(mb: int, newlines: bool) -> str:
    total = mb * 1000 * 1000
    if newlines:
        return f"yes {'x' * 99} | head -n {total // 100}"
    return f"head -c {total} /dev/zero | tr '\\0' x"


def bare(cmd: str) -> float:
    began = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    while proc.stdout.read1(65536):  # type: ignore[attr-defined]
        pass
    proc.wait()
    return time.perf_counter() - began


def agent(cmd: str, workdir: Path) -> tuple[float, float, str]:
    entry = LogEntry("step", ["sh", "-c", cmd], Redactor(SECRETS), CAP)
    cpu, began = time.process_time(), time.perf_counter()
    code = run_host_command(["sh", "-c", cmd], workdir, entry, StopSignal())
    entry.finish(code)
    out = entry.output()
    return time.perf_counter() - began, time.process_time() - cpu, out[-90:].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-newlines", action="store_true", help="one endless line instead of 100-byte lines")
    args = parser.parse_args()
    cmd = script(args.mb, not args.no_newlines)
    bare_times, agent_times, agent_cpu = [], [], []
    marker = ""
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):  # interleaved, so a change in machine load hits both alike
            bare_times.append(bare(cmd))
            wall, cpu, marker = agent(cmd, Path(tmp))
            agent_times.append(wall)
            agent_cpu.append(cpu)
    b, a = statistics.median(bare_times), statistics.median(agent_times)
    shape = "one line" if args.no_newlines else "100-byte lines"
    print(f"step output: {args.mb} MB in {shape}, entry cap {CAP // (1024 * 1024)} MiB, {args.runs} runs")
    print(f"bare (piped, drained):  median {b:.3f}s  runs {', '.join(f'{t:.3f}' for t in bare_times)}")
    print(f"agent (LogEntry):       median {a:.3f}s  runs {', '.join(f'{t:.3f}' for t in agent_times)}")
    print(f"ratio agent/bare:       {a / b:.2f}  (goal <= 1.5)")
    print(f"agent CPU per run:      median {statistics.median(agent_cpu):.3f}s")
    print(f"entry ends with:        {marker}")


if __name__ == "__main__":
    main()
