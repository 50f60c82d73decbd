"""`fleet` start-up cost: CPU time of `fleet --help` and `fleet queues` against a script importing only typer,
rich and httpx (the floor any typer + rich + httpx CLI pays). Target: a ratio of at most 1.5.

CPU time (user + system of the child, from os.wait4) rather than wall time, so other load on the machine moves
the figures less. `fleet queues` talks to a real `fleet server` on loopback. Medians of --runs runs each.

Run: .venv/bin/python bench/bench_cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fleet_server import start_fleet_server  # noqa: E402

BASELINE = "import httpx, rich.console, rich.table, typer\n"


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return usage.ru_utime + usage.ru_stime


def median(argv: list[str], env: dict[str, str], runs: int) -> float:
    cpu_seconds(argv, env)  # warm the file cache and the bytecode
    return statistics.median(cpu_seconds(argv, env) for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        baseline_script = Path(work) / "baseline.py"
        baseline_script.write_text(BASELINE)
        server = start_fleet_server(Path(work) / "fleet")
        try:
            env = {**os.environ, "FLEET_URL": server.url, "FLEET_API_TOKEN": server.api_token}
            base = median([sys.executable, str(baseline_script)], env, args.runs)
            fleet = [sys.executable, "-m", "fleet"]
            figures = {
                "fleet --help": median([*fleet, "--help"], env, args.runs),
                "fleet queues": median([*fleet, "queues"], env, args.runs),
            }
        finally:
            server.stop()
    print(f"baseline (import typer, rich, httpx): {base * 1000:.0f} ms CPU (median of {args.runs})")
    worst = 0.0
    for name, seconds in figures.items():
        ratio = seconds / base
        worst = max(worst, ratio)
        print(f"{name}: {seconds * 1000:.0f} ms CPU, {ratio:.2f}x the baseline")
    print(f"worst ratio {worst:.2f} (target <= 1.5)")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
