"""`fleet jobs|queues|executors|repos`: the job API from a terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from fleet.cli.client import FleetClient
from fleet.cli.errors import fail
from fleet.cli.helptext import examples
from fleet.cli.output import MISSING, console, duration, json_out, show, styled, table, when

jobs_app = typer.Typer(
    name="jobs",
    help="Submit, follow, list, inspect, cancel and retry jobs.",
    no_args_is_help=True,
    epilog=examples("fleet jobs submit job.json --wait", "fleet jobs list --state failed", "fleet jobs logs 42 -f"),
)
queues_app = typer.Typer(
    name="queues", help="Queue sizes; `fleet queues add NAME` creates a queue.", invoke_without_command=True
)
repos_app = typer.Typer(
    name="repos",
    help="Repositories the server's git proxy serves to executors.",
    no_args_is_help=True,
    epilog=examples("fleet repos add github.com/acme/app /srv/git/app", "fleet repos list"),
)
# `fleet executors`, a single command: fleet.cli.main merges it into `fleet`.
executors_app = typer.Typer()
TERMINAL = {"completed", "failed", "canceled"}
JSON_HELP = "Print JSON instead of a table: the API's records, camelCase keys."


def _json_opt(help: str = JSON_HELP) -> Any:
    return typer.Option(False, "--json", help=help)


@jobs_app.command(
    "submit",
    epilog=examples(
        "fleet jobs submit job.json",
        "fleet jobs submit job.json --queue codeintel --wait",
        'echo \'{"queue": "batches", "cliSteps": [{"commands": ["date"]}]}\' | fleet jobs submit - --json',
    ),
)
def submit(
    file: Path = typer.Argument(..., help="Job JSON (docs/control-plane.md) without id/token; `-` reads stdin."),
    queue: str = typer.Option(None, help="Queue to submit to; overrides the file's `queue`."),
    wait: bool = typer.Option(
        False, help="Stream the job's logs until it finishes; exit 1 unless it completed (prints the failure)."
    ),
    as_json: bool = _json_opt("Print the job record as JSON (with --wait: the finished job)."),
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
    if not wait:
        if as_json:
            json_out(job)
        else:
            console.print(f"submitted job [bold]{job['id']}[/] to queue {job['queue']} ({job['state']})")
        return
    if not as_json:
        console.print(f"submitted job [bold]{job['id']}[/] to queue {job['queue']} ({job['state']})")
    end = _follow(client, job["id"], quiet=as_json)
    if as_json:
        json_out(client.request("GET", f"/api/v1/jobs/{job['id']}"))
    if end["state"] != "completed":
        raise typer.Exit(1)


def _entry_header(e: dict[str, Any]) -> None:
    console.print(f"[bold]{e['key']}[/] [dim](attempt {e['attempt']})[/]")
    console.print(f"  $ {' '.join(e['command'])}", style="dim", markup=False, highlight=False)


def _entry_footer(e: dict[str, Any]) -> None:
    took = duration(e["durationMs"] / 1000) if e["durationMs"] is not None else MISSING
    console.print(f"  [dim]exit {e['exitCode']}, took {took}[/]")


def _follow(client: FleetClient, job_id: int, quiet: bool = False) -> dict[str, Any]:
    """Print the job's logs as they arrive; return the `end` event (final state and failure message)."""
    state = None
    for event, data in client.events(f"/api/v1/jobs/{job_id}/logs"):
        if quiet and event != "end":
            continue
        if event == "job" and data["state"] != state and data["state"] not in TERMINAL:
            state = data["state"]
            console.print(f"job {job_id} is {styled(state)}", style="dim")
        elif event == "entry":
            if data["offset"] == 0:
                _entry_header(data)
            for line in data["out"].splitlines():
                console.print(f"  {line}", markup=False, highlight=False)
            if data["exitCode"] is not None:
                _entry_footer(data)
        elif event == "end":
            if not quiet:
                message = f": {data['failureMessage']}" if data["failureMessage"] else ""
                console.print(f"job {job_id}: {styled(data['state'])}{message}", highlight=False)
            return data
    fail(f"the server ended the log stream of job {job_id} before the job finished; run `fleet jobs logs {job_id}`")


@jobs_app.command(
    "list",
    epilog=examples("fleet jobs list", "fleet jobs list --queue batches --state failed", "fleet jobs list --json"),
)
def list_jobs(
    queue: str = typer.Option(None, help="Only this queue (an unknown queue is an error)."),
    state: str = typer.Option(None, help="Only this state: queued, processing, errored, completed, failed, canceled."),
    limit: int = typer.Option(50, help="At most this many, newest first."),
    as_json: bool = _json_opt(),
) -> None:
    """List jobs, newest first."""
    params = {k: v for k, v in {"queue": queue, "state": state, "limit": limit}.items() if v}
    jobs = FleetClient().request("GET", "/api/v1/jobs", params=params)["jobs"]
    if as_json:
        json_out(jobs)
        return
    t = table("id", "queue", "state", "repository", "executor", "created", "message")
    for j in jobs:
        t.add_row(
            str(j["id"]),
            j["queue"],
            styled(j["state"]),
            show(j["spec"].get("repositoryName")),
            show(j["executorName"]),
            when(j["createdAt"]),
            show(j["failureMessage"]),
        )
    console.print(t)


@jobs_app.command("show", epilog=examples("fleet jobs show 42", "fleet jobs show 42 --json"))
def show_job(job_id: int, as_json: bool = _json_opt("Print the job record as JSON.")) -> None:
    """Show one job."""
    job = FleetClient().request("GET", f"/api/v1/jobs/{job_id}")
    if as_json:
        json_out(job)
        return
    t = table("", "")
    t.show_header = False
    for key in ("id", "queue", "executorName", "attempt", "numResets", "numFailures", "failureMessage"):
        t.add_row(key, show(job.get(key)))
    t.add_row("state", styled(job["state"]))
    for key in ("createdAt", "startedAt", "finishedAt"):
        t.add_row(key, when(job.get(key)))
    t.add_row("cancelRequested", "yes" if job["cancelRequested"] else "no")
    t.add_row("repository", f"{show(job['spec'].get('repositoryName'))} {job['spec'].get('commit') or ''}".strip())
    t.add_row("steps", str(len(job["spec"].get("dockerSteps", [])) + len(job["spec"].get("cliSteps", []))))
    console.print(t)


def _print_logs(client: FleetClient, job_id: int) -> None:
    for e in client.request("GET", f"/api/v1/jobs/{job_id}/logs")["entries"]:
        _entry_header(e)
        for line in e["out"].splitlines():
            console.print(f"  {line}", markup=False, highlight=False)
        if e["exitCode"] is None:
            console.print("  [dim]running[/]")
        else:
            _entry_footer(e)


@jobs_app.command(
    "logs", epilog=examples("fleet jobs logs 42", "fleet jobs logs 42 --follow", "fleet jobs logs 42 --json")
)
def logs(
    job_id: int,
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Stream the output as it arrives until the job ends; exit 1 unless it completed."
    ),
    as_json: bool = _json_opt("Print {jobId, entries} as JSON (not with --follow)."),
) -> None:
    """Print a job's execution log entries."""
    client = FleetClient()
    if follow:
        if _follow(client, job_id)["state"] != "completed":
            raise typer.Exit(1)
        return
    if as_json:
        json_out(client.request("GET", f"/api/v1/jobs/{job_id}/logs"))
        return
    _print_logs(client, job_id)


@jobs_app.command("cancel", epilog=examples("fleet jobs cancel 42"))
def cancel(job_id: int) -> None:
    """Cancel a job: at once if still queued, otherwise when its executor has stopped it."""
    job = FleetClient().request("POST", f"/api/v1/jobs/{job_id}/cancel")
    if job["state"] == "canceled":
        console.print(f"job {job_id} canceled")
    else:
        console.print(f"job {job_id} is {job['state']}: cancellation requested, its executor stops it shortly")


@jobs_app.command("retry", epilog=examples("fleet jobs retry 42", "fleet jobs retry 42 && fleet jobs logs 42 -f"))
def retry(job_id: int, as_json: bool = _json_opt("Print the queued job record as JSON.")) -> None:
    """Queue a finished (completed, failed or canceled) job again, as a new attempt; earlier logs are kept."""
    job = FleetClient().request("POST", f"/api/v1/jobs/{job_id}/retry")
    if as_json:
        json_out(job)
        return
    console.print(f"job {job_id} queued again in {job['queue']} (attempt {job['attempt'] + 1} when dequeued)")


@queues_app.callback(
    epilog=examples("fleet queues", "fleet queues --json", "fleet queues add indexing --max-retries 1")
)
def queues(ctx: typer.Context, as_json: bool = _json_opt()) -> None:
    """Show every queue with its size (queued + errored + processing) and oldest queued job."""
    if ctx.invoked_subcommand:
        return
    data = FleetClient().request("GET", "/api/v1/queues")["queues"]
    if as_json:
        json_out(data)
        return
    t = table("queue", "size", "queued", "processing", "errored", "completed", "failed", "canceled", "oldest queued")
    for q in data:
        t.add_row(
            q["name"],
            f"[bold]{q['size']}[/]",
            *(str(q[k]) for k in ("queued", "processing", "errored", "completed", "failed", "canceled")),
            duration(q["oldestQueuedAgeSeconds"]),
        )
    console.print(t)


@queues_app.command("add", epilog=examples("fleet queues add indexing", "fleet queues add risky --max-retries 0"))
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
    console.print(
        f"queue {q['name']} created (max retries {q['maxRetries']}, retry delay {duration(q['retryDelaySeconds'])})"
    )


@executors_app.command(
    "executors", epilog=examples("fleet executors", "fleet executors --all", "fleet executors --json")
)
def executors(
    show_all: bool = typer.Option(False, "--all", help="Also list inactive executors (drained or crashed)."),
    as_json: bool = _json_opt(),
) -> None:
    """Executors with their health (healthy, late, drained, crashed), what they run and when they were last seen."""
    data = FleetClient().request("GET", "/api/v1/executors")["executors"]
    if not show_all:
        data = [e for e in data if e.get("active", True)]
    if as_json:
        json_out(data)
        return
    t = table("health", "name", "queues", "running", "executor", "os/arch", "docker", "git", "last seen")
    for e in data:
        health = e.get("health") or ("healthy" if e["healthy"] else "late")
        t.add_row(
            styled(health),
            e["name"],
            ",".join(e["queues"]),
            ",".join(str(i) for i in e.get("runningJobIds", [])) or MISSING,
            show(e["executorVersion"]),
            f"{e['os']}/{e['architecture']}" if e["os"] else MISSING,
            show(e["dockerVersion"]),
            show(e["gitVersion"]),
            when(e["lastSeenAt"]),
        )
    console.print(t)


@repos_app.command("add", epilog=examples("fleet repos add github.com/acme/app /srv/git/app"))
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


@repos_app.command("list", epilog=examples("fleet repos list", "fleet repos list --json"))
def list_repos(as_json: bool = _json_opt()) -> None:
    """List registered repositories."""
    repos = FleetClient().request("GET", "/api/v1/repositories")["repositories"]
    if as_json:
        json_out(repos)
        return
    t = table("name", "location", "added")
    for r in repos:
        t.add_row(r["name"], r["url"], when(r["createdAt"]))
    console.print(t)
