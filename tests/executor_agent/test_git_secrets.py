"""No job token on a command line: every process on the host can read /proc/*/cmdline. A real clone through the
server's git proxy, watched from outside while it runs (shell runtime; the token must still reach git)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.executor_agent.helpers import agent_env, make_repo, register_repo, start_agent, submit, wait_state
from tests.support.fleet_server import FleetServer


def git_cmdlines() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] and os.path.basename(argv[0]).startswith(b"git"):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def test_clone_through_the_proxy_shows_no_token_in_any_cmdline(fleet_server: FleetServer, tmp_path: Path) -> None:
    # Enough content that the fetch runs long enough to be seen; random so it does not compress away.
    blob = os.urandom(12 * 1024 * 1024).hex()
    sha = make_repo(tmp_path / "origin", {"big.txt": blob, "README": "hi\n"})
    register_repo(fleet_server, "github.com/acme/secret", tmp_path / "origin")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.extend(git_cmdlines())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = agent_env(fleet_server, tmp_path, "", EXECUTOR_RUNTIME="shell", EXECUTOR_TRUSTED_QUEUES="batches",
                    EXECUTOR_NUM_TOTAL_JOBS="1")  # fmt: skip
    agent = start_agent(env, tmp_path / "agent.log")
    try:
        job_id = submit(
            fleet_server,
            repositoryName="github.com/acme/secret",
            commit=sha,
            dockerSteps=[{"image": "-", "commands": ["head -c 2 README", "wc -c < big.txt"]}],
        )
        record = wait_state(fleet_server, job_id, timeout=300)
    finally:
        done.set()
        watcher.join()
        agent.stop()
    assert record["state"] == "completed", record  # the token did reach git: the proxy let the clone through
    fetches = [c for c in seen if " fetch " in c or "remote-http" in c or "upload-pack" in c]
    assert fetches, f"the watcher saw no git fetch; it cannot vouch for anything (saw {sorted(set(seen))[:5]})"
    assert not [c for c in seen if "Bearer" in c or "Authorization" in c], sorted(set(seen))
