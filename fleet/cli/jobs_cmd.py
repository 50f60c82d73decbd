"""`fleet jobs|queues|executors|repos`: the job API from a terminal."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fleet.cli.client import FleetClient
from fleet.cli.errors import fail
from fleet.cli.main import app

jobs_app = typer.Typer(help="Submit, list, inspect and cancel jobs.", no_args_is_help=True)
queues_app = typer.Typer(help="Queue sizes; `fleet queues add NAME` creates a queue.", invoke_without_command=True)
repos_app = typer.Typer(help="Repositories the server's git proxy serves to executors.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(queues_app, name="queues")
app.add_typer(repos_app, name="repos")
console = Console()
TERMINAL = {"completed", "failed", "canceled"}
STATE_STYLE = {
    "completed": "green",
    "failed": "red",
    "canceled": "red",
    "processing": "blue",
    "errored": "yellow",
}


def _json_out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@jobs_app.command("submit")
def submit(
    file: Path = typer.Argument(..., help="Job JSON (CONTRACT section 3) without id/token; `-` reads stdin."),
    queue: str = typer.Option(None, help="Queue to submit to; overrides the file's `queue`."),
    wait: bool = typer.Option(False, help="Wait until the job finishes and print its logs."),
    as_json: bool = typer.Option(False, "--json", help="Print the job record as JSON."),
) -> None:
    """Submit a job to a queue."""
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"{file} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(body, dict):
        fail(f"{file} must hold a JSON object (the job), not {type(body).__name__}")
    if queue:
        body["queue"] = queue
    if "queue" not in body:
        fail(f"{file} has no `queue`; add one or pass --queue batches")
    client = FleetClient()
    job = client.request("POST", "/api/v1/jobs", json=body)
    if as_json and not wait:
        _json_out(job)
        return
    console.print(f"submitted job [bold]{job['id']}[/] to queue {job['queue']} ({job['state']})")
    if wait:
        job = _wait(client, job["id"])
        _print_logs(client, job["id"])
        console.print(f"job {job['id']}: [{STATE_STYLE.get(job['state'], '')}]{job['state']}[/]")
        if job["state"] != "completed":
            raise typer.Exit(1)


def _wait(client: FleetClient, job_id: int, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        job = client.request("GET", f"/api/v1/jobs/{job_id}")
        if job["state"] != last:
            console.print(f"  job {job_id} is {job['state']}", style="dim")
            last = job["state"]
        if job["state"] in TERMINAL:
            return job
        time.sleep(0.5)
    fail(f"job {job_id} did not finish within {timeout:.0f}s")


@jobs_app.command("list")
def list_jobs(
    queue: str = typer.Option(None, help="Only this queue."),
    state: str = typer.Option(None, help="Only this state (queued, processing, completed, errored, ...)."),
    limit: int = typer.Option(50, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs, newest first."""
    params = {k: v for k, v in {"queue": queue, "state": state, "limit": limit}.items() if v}
    jobs = FleetClient().request("GET", "/api/v1/jobs", params=params)["jobs"]
    if as_json:
        _json_out(jobs)
        return
    table = Table("id", "queue", "state", "repository", "executor", "created", "message")
    for j in jobs:
        style = STATE_STYLE.get(j["state"], "")
        table.add_row(
            str(j["id"]),
            j["queue"],
            f"[{style}]{j['state']}[/]" if style else j["state"],
            j["spec"].get("repositoryName") or "-",
            j["executorName"] or "-",
            j["createdAt"][:19],
            (j["failureMessage"] or "")[:60],
        )
    console.print(table)


@jobs_app.command("show")
def show(job_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one job."""
    job = FleetClient().request("GET", f"/api/v1/jobs/{job_id}")
    if as_json:
        _json_out(job)
        return
    table = Table(show_header=False)
    for key in (
        "id",
        "queue",
        "state",
        "executorName",
        "attempt",
        "numResets",
        "numFailures",
        "failureMessage",
        "createdAt",
        "startedAt",
        "finishedAt",
        "cancelRequested",
    ):
        table.add_row(key, str(job.get(key)))
    table.add_row("repository", f"{job['spec'].get('repositoryName') or '-'} {job['spec'].get('commit') or ''}")
    table.add_row("steps", str(len(job["spec"].get("dockerSteps", [])) + len(job["spec"].get("cliSteps", []))))
    console.print(table)


def _print_logs(client: FleetClient, job_id: int) -> None:
    entries = client.request("GET", f"/api/v1/jobs/{job_id}/logs")["entries"]
    for e in entries:
        code = "running" if e["exitCode"] is None else f"exit {e['exitCode']}"
        took = f", {e['durationMs']} ms" if e["durationMs"] is not None else ""
        console.print(f"[bold]{e['key']}[/] (attempt {e['attempt']}, {code}{took})")
        console.print(f"  $ {' '.join(e['command'])}", style="dim", markup=False, highlight=False)
        for line in e["out"].splitlines():
            console.print(f"  {line}", markup=False, highlight=False)


@jobs_app.command("logs")
def logs(job_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print a job's execution log entries."""
    client = FleetClient()
    if as_json:
        _json_out(client.request("GET", f"/api/v1/jobs/{job_id}/logs"))
        return
    _print_logs(client, job_id)


@jobs_app.command("cancel")
def cancel(job_id: int) -> None:
    """Cancel a job: at once if still queued, otherwise when its executor has stopped it."""
    job = FleetClient().request("POST", f"/api/v1/jobs/{job_id}/cancel")
    if job["state"] == "canceled":
        console.print(f"job {job_id} canceled")
    else:
        console.print(f"job {job_id} is {job['state']}: cancellation requested, its executor stops it shortly")


@queues_app.callback()
def queues(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show every queue with its size (queued + errored + processing) and oldest queued job."""
    if ctx.invoked_subcommand:
        return
    data = FleetClient().request("GET", "/api/v1/queues")["queues"]
    if as_json:
        _json_out(data)
        return
    table = Table(
        "queue", "size", "queued", "processing", "errored", "completed", "failed", "canceled", "oldest queued"
    )
    for q in data:
        age = q["oldestQueuedAgeSeconds"]
        table.add_row(
            q["name"],
            f"[bold]{q['size']}[/]",
            *(str(q[k]) for k in ("queued", "processing", "errored", "completed", "failed", "canceled")),
            f"{age:.1f}s" if age is not None else "-",
        )
    console.print(table)


@queues_app.command("add")
def add_queue(
    name: str,
    max_retries: int = typer.Option(None, help="Retries of an errored job before it fails (server default 3)."),
    retry_delay: float = typer.Option(None, help="Seconds before an errored job is retried (server default 10)."),
) -> None:
    """Create a queue."""
    body: dict[str, Any] = {"name": name}
    if max_retries is not None:
        body["maxRetries"] = max_retries
    if retry_delay is not None:
        body["retryDelaySeconds"] = retry_delay
    q = FleetClient().request("POST", "/api/v1/queues", json=body)
    console.print(f"queue {q['name']} created (max retries {q['maxRetries']}, retry delay {q['retryDelaySeconds']}s)")


@app.command("executors")
def executors(as_json: bool = typer.Option(False, "--json")) -> None:
    """Executors that have sent a heartbeat; green = seen within 3 heartbeat intervals."""
    data = FleetClient().request("GET", "/api/v1/executors")["executors"]
    if as_json:
        _json_out(data)
        return
    table = Table("", "name", "queues", "os/arch", "executor", "docker", "git", "last seen")
    for e in data:
        mark = "[green]●[/]" if e["healthy"] else "[red]●[/]"
        table.add_row(
            mark,
            e["name"],
            ",".join(e["queues"]),
            f"{e['os']}/{e['architecture']}",
            e["executorVersion"],
            e["dockerVersion"],
            e["gitVersion"],
            e["lastSeenAt"][:19],
        )
    console.print(table)


@repos_app.command("add")
def add_repo(
    name: str = typer.Argument(..., help="Name jobs use in repositoryName, e.g. github.com/acme/app."),
    location: str = typer.Argument(..., help="Local path of a git repository (on the server) or an http(s) URL."),
) -> None:
    """Register a repository so executors can clone it through the server's git proxy."""
    if not location.startswith(("http://", "https://")):
        path = Path(location).expanduser().resolve()
        if not path.exists():
            fail(f"{location}: no such directory; give the path of a git repository or an http(s) URL")
        location = str(path)
    repo = FleetClient().request("POST", "/api/v1/repositories", json={"name": name, "url": location})
    console.print(f"repository {repo['name']} -> {repo['url']}")


@repos_app.command("list")
def list_repos() -> None:
    """List registered repositories."""
    table = Table("name", "location", "added")
    for r in FleetClient().request("GET", "/api/v1/repositories")["repositories"]:
        table.add_row(r["name"], r["url"], r["createdAt"][:19])
    console.print(table)
