"""An agent to kill: runs one job's step (`sleep`) in a VM and prints the VM's name once the step runs.

python -m tests.executor_agent.vm_child ASSETS_DIR WORK_DIR DOCKER_HOST NETNS
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from executor_agent.job import StopSignal
from tests.executor_agent import vm_helpers as vh


def main() -> None:
    assets_dir, work, docker_host, netns = sys.argv[1:5]
    from executor_agent.runtimes.vm import VMRuntime

    runtime = VMRuntime(vh.vm_settings(Path(assets_dir), Path(work), docker_host), "doomed-executor", netns=netns)
    runner, sink = vh.job_runner(runtime, Path(work))
    job = vh.raw_job(dockerSteps=[{"image": "busybox:latest", "commands": ["echo started", "sleep 600"]}])
    threading.Thread(target=runner.run, args=(job, StopSignal()), daemon=True).start()
    while "started" not in sink.out("step.docker.0"):
        time.sleep(0.1)
    print(vh.vm_name(sink, "step.docker.0"), flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
