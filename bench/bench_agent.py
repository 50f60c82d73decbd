"""Agent figures: per-job overhead against a bare `docker run`, and submit -> step start latency.

Overhead: a one-step job through `fleet server` + `executor` (submit to completion as the server records it:
finishedAt - createdAt) against a bare `docker run` of the same image, command and flags (the exact command line
the agent shows in the step's log entry), timed on the same private Docker Engine. Figure: ratio of medians.
Latency: with the agent idle (long-polling), job createdAt -> the step's log entry startTime; p50 and p90.
Everything shares this machine's cores with the server and the engine, so the figures include that contention.

Run: .venv/bin/python bench/bench_agent.py [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.executor_agent.helpers import agent_env, start_agent  # noqa: E402
from tests.support.docker_engine import start_docker_engine  # noqa: E402
from tests.support.fleet_server import start_fleet_server  # noqa: E402

COMMANDS = ["echo hello from the step"]
STEP = {"image": "busybox", "commands": COMMANDS}


def bare_docker_run(docker_host: str, workspace: Path) -> float:
    """The agent's step as a plain `docker run` (same flags as its log entry shows)."""
    argv = ["docker", "run", "--rm", "--init", "--cpus", "1", "--memory", "256M", "-v", f"{workspace}:/data"]
    argv += ["-w", "/data", "--entrypoint", "/bin/sh", "busybox", "-c", "set -e\n" + "\n".join(COMMANDS) + "\n"]
    began = time.perf_counter()
    subprocess.run(argv, env={**os.environ, "DOCKER_HOST": docker_host}, check=True, capture_output=True)
    return time.perf_counter() - began


def through_agent(api: httpx.Client) -> tuple[float, float, float]:
    """(submit -> completed, submit -> step start, step duration) in seconds, from the recorded timestamps."""
    job_id = api.post("/api/v1/jobs", json={"queue": "batches", "dockerSteps": [STEP]}).json()["id"]
    while (record := api.get(f"/api/v1/jobs/{job_id}").json())["state"] not in ("completed", "errored", "failed"):
        time.sleep(0.02)
    if record["state"] != "completed":
        raise RuntimeError(f"job {job_id} {record['state']}: {record['failureMessage']}")
    entry = next(e for e in api.get(f"/api/v1/jobs/{job_id}/logs").json()["entries"] if e["key"] == "step.docker.0")
    created = datetime.fromisoformat(record["createdAt"])
    total = (datetime.fromisoformat(record["finishedAt"]) - created).total_seconds()
    step_start = (datetime.fromisoformat(entry["startTime"]) - created).total_seconds()
    return total, step_start, entry["durationMs"] / 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="jobs and bare runs to time (default 20)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    engine = start_docker_engine()
    server = start_fleet_server(work / "fleet")
    agent = None
    try:
        env = agent_env(server, work, engine.host, SRC_LOG_LEVEL="warn", EXECUTOR_QUEUE_LONG_POLL="30s")
        agent = start_agent(env, work / "executor.log")
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_token}"}, timeout=30)
        (work / "bare").mkdir()
        through_agent(api)  # warm-up: image cache, connections
        bare_docker_run(engine.host, work / "bare")
        bare, total, start, step = [], [], [], []
        for _ in range(args.jobs):
            # Interleaved, so both see the same machine load.
            bare.append(bare_docker_run(engine.host, work / "bare"))
            time.sleep(0.3)  # let the agent go back to its long poll: the latency is that of an idle agent
            t, s, d = through_agent(api)
            total.append(t)
            start.append(s)
            step.append(d)
        ratio = statistics.median(total) / statistics.median(bare)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        version = engine.client().version()["Version"]
        print(f"bench_agent: {args.jobs} one-step busybox jobs, Docker Engine {version}, load average {load}")
        print(f"  bare docker run           median {statistics.median(bare) * 1000:7.1f} ms")
        print(f"  job via server + executor median {statistics.median(total) * 1000:7.1f} ms")
        print(f"  overhead ratio of medians {ratio:7.3f}   (target <= 1.15)")
        outside = statistics.median(t - d for t, d in zip(total, step, strict=True))
        print(f"    of which the step (container create..remove) median {statistics.median(step) * 1000:7.1f} ms,")
        print(f"    and everything else (dequeue, clone-less setup, logs, report) median {outside * 1000:7.1f} ms")
        print(
            f"  submit -> step start      p50 {percentile(start, 0.5) * 1000:7.1f} ms"
            f"   p90 {percentile(start, 0.9) * 1000:7.1f} ms   (target p50 <= 150 ms)"
        )
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
