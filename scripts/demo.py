"""`make demo`: a fleet server, one executor and one real job, all on this machine, then everything stopped.

1. `fleet server` on SQLite in a temporary directory (free loopback port, generated tokens);
2. a demo git repository, registered with the server's git proxy;
3. a private Docker Engine (own socket and data root) with a `docker import`ed busybox image; when none can be
   started, the executor uses the shell runtime instead, and says so;
4. one `executor`, one job: clone, a step that changes a file, then `git diff`;
5. the job's state, logs and result, then everything the demo started is stopped (also on Ctrl-C or failure).

With KEEP=1 (`make demo KEEP=1`) a successful demo leaves the server, the executor and the Docker Engine running
and prints the dashboard URL, the token to sign in with, three `fleet` commands to try and how to stop it all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.docker_engine import DockerEngine, start_docker_engine  # noqa: E402

QUEUE = "batches"
REPO_NAME = "demo/hello"
KEEP = os.environ.get("KEEP", "") not in ("", "0", "false", "no")
# What KEEP=1 leaves running, for the stop line it prints: (name, pid).
kept: list[tuple[str, int]] = []


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_demo_repo(path: Path) -> str:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    (path / "hello.txt").write_text("hello world\n")
    (path / "README.md").write_text("# demo\nA repository the demo job changes.\n")
    git("add", ".", cwd=path)
    git("-c", "user.name=demo", "-c", "user.email=demo@example.com", "commit", "-qm", "initial", cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fleet server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"fleet server not healthy after 30s:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    say(f"stopped {name}")


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], log: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    ok = False
    try:
        yield proc
        ok = True
    finally:
        if KEEP and ok and proc.poll() is None:
            kept.append((name, proc.pid))
        else:
            stop(proc, name)


def try_docker(workdir: Path) -> DockerEngine | None:
    try:
        return start_docker_engine(workdir)
    except Exception as exc:  # any reason at all: the demo falls back to the shell runtime
        say(f"no Docker Engine could be started ({str(exc).splitlines()[0]})")
        return None


def job_spec(commit: str) -> dict[str, Any]:
    return {
        "queue": QUEUE,
        "repositoryName": REPO_NAME,
        "commit": commit,
        "dockerSteps": [
            {
                "key": "change",
                "image": "busybox",
                "env": ["WHO=fleet"],
                "commands": ['sed -i "s/world/$WHO/" hello.txt', "echo 'a line added by the job' >> hello.txt"],
            }
        ],
        "cliSteps": [{"key": "diff", "commands": ["git diff"]}],
    }


def run_demo(work: Path) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    executor_token, api_token = secrets.token_hex(24), secrets.token_hex(24)
    server_env = {
        **os.environ,
        "FLEET_DATABASE_URL": f"sqlite:///{work}/fleet.db",
        "FLEET_HTTP_ADDR": f"127.0.0.1:{port}",
        "FLEET_EXECUTORS_ACCESS_TOKEN": executor_token,
        "FLEET_API_TOKEN": api_token,
    }
    say(f"starting fleet server on {url} (SQLite in {work})")
    server_log = work / "fleet-server.log"
    with started([sys.executable, "-m", "fleet", "server"], server_env, server_log, "fleet server") as server:
        wait_healthy(url, server, server_log)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_token}"}, timeout=30)
        commit = make_demo_repo(work / "demo-repo")
        api.post("/api/v1/repositories", json={"name": REPO_NAME, "url": str(work / "demo-repo")}).raise_for_status()
        say(f"demo repository {REPO_NAME} at {work / 'demo-repo'} (commit {commit[:12]}) registered")

        say("starting a private Docker Engine (own socket and data root) and importing a busybox image")
        engine = try_docker(work / "docker")
        agent_env = {
            **os.environ,
            "EXECUTOR_FRONTEND_URL": url,
            "EXECUTOR_FRONTEND_PASSWORD": executor_token,
            "EXECUTOR_QUEUE_NAME": QUEUE,
            "EXECUTOR_USE_FIRECRACKER": "false",
            "EXECUTOR_TRUSTED_QUEUES": QUEUE,  # the `git diff` step runs on this host
            "EXECUTOR_JOB_NUM_CPUS": "1",
            "EXECUTOR_JOB_MEMORY": "512M",
            "EXECUTOR_WORKSPACE_ROOT": str(work / "workspaces"),
            "EXECUTOR_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "SRC_LOG_LEVEL": "info",
        }
        if engine is not None:
            agent_env.update(DOCKER_HOST=engine.host, EXECUTOR_RUNTIME="docker")
            say(f"Docker Engine ready at {engine.host}")
        else:
            agent_env["EXECUTOR_RUNTIME"] = "shell"
            say("FALLBACK: the executor uses the shell runtime: steps run as host processes, NOT isolated")
        try:
            agent_log = work / "executor.log"
            with started([sys.executable, "-m", "executor_agent", "run"], agent_env, agent_log, "executor"):
                code = submit_and_show(api, commit, agent_log)
                if code != 0:
                    raise DemoFailed(code)
            if KEEP:
                keep_running(url, api_token, work, [("fleet server", server.pid), *kept], engine)
            return code
        finally:
            if engine is not None and not kept:
                engine.stop()
                say("stopped the Docker Engine")


class DemoFailed(Exception):
    """The job did not complete: stop everything, even with KEEP=1."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the demo job did not complete (exit {code})")
        self.code = code


def keep_running(url: str, token: str, work: Path, running: list[tuple[str, int]], engine: DockerEngine | None) -> None:
    if engine is not None:
        running.append(("Docker Engine", engine.process.pid))
    pids = " ".join(str(pid) for _, pid in running)
    fleet = f"{ROOT / '.venv' / 'bin' / 'fleet'}"
    print(
        f"""
=== the fleet keeps running (KEEP=1) ===
dashboard: {url}/   (sign in with the token below)
token:     {token}

try, in another shell:
  export FLEET_URL={url} FLEET_API_TOKEN={token}
  {fleet} queues
  {fleet} jobs list
  {fleet} jobs logs 1 --follow

stop it all: kill {pids} && rm -rf {work}
""",
        flush=True,
    )


def submit_and_show(api: httpx.Client, commit: str, agent_log: Path) -> int:
    reply = api.post("/api/v1/jobs", json=job_spec(commit))
    reply.raise_for_status()
    job_id = reply.json()["id"]
    say(f"submitted job {job_id}: clone {REPO_NAME}, a busybox step that edits hello.txt, then `git diff`")
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        record = api.get(f"/api/v1/jobs/{job_id}").json()
        if record["state"] != state:
            state = record["state"]
            say(f"job {job_id} is {state}")
        if state in ("completed", "errored", "failed", "canceled"):
            break
        time.sleep(0.2)
    else:
        say(f"job {job_id} did not finish within 120s; executor log:\n{agent_log.read_text()[-3000:]}")
        return 1
    entries = api.get(f"/api/v1/jobs/{job_id}/logs").json()["entries"]
    print(f"\n=== job {job_id}: {state} ===")
    for entry in entries:
        print(f"--- {entry['key']} (exit {entry['exitCode']}, {entry['durationMs']} ms)")
        print("    $ " + " ".join(entry["command"])[:200].replace("\n", "; "))
        for line in entry["out"].splitlines():
            print(f"    {line}")
    diff = next((e["out"] for e in entries if e["key"] == "step.cli.diff"), "")
    print("\n=== result ===")
    if state == "completed":
        print("".join(line.removeprefix("stdout: ") + "\n" for line in diff.splitlines() if line.startswith("stdout")))
    else:
        print(f"{state}: {record['failureMessage']}")
    return 0 if state == "completed" else 1


def main() -> int:
    if not shutil.which("git"):
        say("git is missing: apt-get install -y git")
        return 1
    work = Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    # Ctrl-C raises KeyboardInterrupt; SIGTERM is turned into the same, so every `finally` stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run_demo(work)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except DemoFailed as exc:
        return exc.code
    except Exception as exc:
        say(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
            say("done; temporary files removed")


if __name__ == "__main__":
    sys.exit(main())
