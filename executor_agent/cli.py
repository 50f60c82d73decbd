"""The `executor` command: `run` (default), `validate`, `install`, `test-vm` (docs/executor.md, "Commands").

Configuration comes from the environment (EXECUTOR_*), as in the seeds' deployment guides. Only typer is imported
to parse the command line: the configuration, the Docker SDK, httpx and the runtimes are imported inside the
commands that use them, so `executor --help` stays cheap.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from executor_agent.config import ExecutorSettings

log = logging.getLogger("executor")
CONFIG_EXIT_CODE = 2  # as executor_agent.config.CONFIG_EXIT_CODE, without importing the configuration for --help

HELP = """Runs jobs from a fleet server's queues, each in its own sandbox: a microVM (the default,
EXECUTOR_USE_FIRECRACKER=true), Docker containers, or host processes for trusted queues.

Configuration is read from the environment. Required: EXECUTOR_FRONTEND_URL, EXECUTOR_FRONTEND_PASSWORD and
EXECUTOR_QUEUE_NAME (or EXECUTOR_QUEUE_NAMES). docs/executor.md lists every variable.
Without a command, `executor` runs (`executor run`)."""

EXAMPLES = """Examples:

\b
  export EXECUTOR_FRONTEND_URL=http://fleet.example.com:3080
  export EXECUTOR_FRONTEND_PASSWORD=the-servers-executors-access-token
  export EXECUTOR_QUEUE_NAME=batches EXECUTOR_USE_FIRECRACKER=false
  executor validate
  executor install all --dry-run
  executor
"""

app = typer.Typer(
    name="executor",
    help=HELP,
    epilog=EXAMPLES,
    add_completion=False,
    invoke_without_command=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from executor_agent.hostinfo import executor_version

        typer.echo(f"executor {executor_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    # `kill -USR1 <pid>` prints every thread's stack: how to see where a stuck job is waiting.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if ctx.invoked_subcommand is None:
        raise typer.Exit(cmd_run(_settings()))


def _settings() -> ExecutorSettings:
    from executor_agent.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(f"executor: configuration error:\n{exc}", err=True)
        raise typer.Exit(CONFIG_EXIT_CODE) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request is too much at info level; the agent logs what matters itself.
    logging.getLogger("httpx").setLevel(max(settings.log_level, logging.WARNING))
    return settings


@app.command(
    "run",
    epilog="""Examples:

\b
  executor run
  EXECUTOR_MAXIMUM_NUM_JOBS=4 EXECUTOR_NUM_TOTAL_JOBS=100 executor run
  EXECUTOR_USE_FIRECRACKER=false DOCKER_HOST=unix:///run/docker.sock executor run
""",
)
def run_command() -> None:
    """Take jobs and run them until stopped (the default command).

    The first SIGTERM or SIGINT stops taking jobs and lets running ones finish (EXECUTOR_SHUTDOWN_GRACE_PERIOD);
    a second one stops them. Exit 0 after a drain or a job budget (EXECUTOR_NUM_TOTAL_JOBS, EXECUTOR_MAX_ACTIVE_TIME),
    1 if the runtime does not answer, 2 for a configuration error or a runtime this host cannot run.
    """
    raise typer.Exit(cmd_run(_settings()))


@app.command(
    "validate",
    epilog="""Examples:

\b
  executor validate
  EXECUTOR_USE_FIRECRACKER=false executor validate && systemctl start executor
""",
)
def validate_command() -> None:
    """Check the configuration, git, the runtime's host requirements and the server; exit 1 on any problem.

    One line per check: a check mark, or a cross with what to fix.
    """
    from executor_agent.validate import validate

    raise typer.Exit(validate(_settings(), typer.echo))


@app.command(
    "install",
    epilog="""Examples:

\b
  executor install --dry-run
  executor install docker docker-config
  EXECUTOR_DOCKER_REGISTRY_MIRROR_URL=http://10.0.1.4:5000 executor install iptables-rules
  executor install vm
""",
)
def install_command(
    components: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMPONENT",
            help="all (default), docker, docker-config, iptables-rules, vm",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change and change nothing.")] = False,
) -> None:
    """Prepare this host, idempotently: Docker Engine, the daemon's registry mirror, the iptables rules that keep
    jobs away from the metadata service and private ranges, and the VM runtime's kernel and base image (`vm`;
    part of `all` when the VM runtime is configured)."""
    from executor_agent.install import install

    settings = _settings()
    try:
        code = install(settings, components or ["all"], dry_run, typer.echo)
    except ValueError as exc:
        typer.echo(f"executor install: {exc}", err=True)
        code = CONFIG_EXIT_CODE
    raise typer.Exit(code)


@app.command(
    "test-vm",
    epilog="""Examples:

\b
  executor test-vm
  executor test-vm --repo github.com/acme/tools --revision main
  docker rm -f "$(executor test-vm --name-only)"
""",
)
def test_vm_command(
    repo: Annotated[
        str, typer.Option(metavar="REPO", help="Repository (as the server names it) to clone into /data.")
    ] = "",
    revision: Annotated[str, typer.Option(metavar="REV", help="Commit, branch or tag to check out.")] = "HEAD",
    name_only: Annotated[bool, typer.Option("--name-only", help="Print only the sandbox's name.")] = False,
) -> None:
    """Start a sandbox with the configured runtime, the repository in /data, and print how to attach and remove it."""
    raise typer.Exit(cmd_test_vm(_settings(), repo, revision, name_only))


def cmd_run(settings: ExecutorSettings) -> int:
    from executor_agent.apiclient import ApiClient
    from executor_agent.config import make_executor_name
    from executor_agent.hostinfo import executor_version
    from executor_agent.loop import Agent
    from executor_agent.metrics import MetricsServer
    from executor_agent.runtimes import RuntimeUnavailable, make_runtime
    from executor_agent.workspace import workspace_root

    name = make_executor_name()
    try:
        runtime = make_runtime(settings, name)
    except RuntimeUnavailable as exc:
        typer.echo(f"executor: runtime {settings.runtime.value}: {exc}", err=True)
        return CONFIG_EXIT_CODE  # this host or build cannot run it: restarting does not help
    try:
        version = runtime.check()
    except RuntimeUnavailable as exc:
        typer.echo(f"executor: {exc}", err=True)
        return 1
    metrics_server = None
    if settings.metrics_addr:
        try:
            metrics_server = MetricsServer(settings.metrics_addr, settings.node_exporter_url)
        except OSError as exc:
            typer.echo(f"executor: EXECUTOR_METRICS_ADDR={settings.metrics_addr!r}: cannot listen: {exc}", err=True)
            return CONFIG_EXIT_CODE
        metrics_server.start()
        log.info("metrics on port %d", metrics_server.port)
    api = ApiClient(settings.frontend_url, settings.frontend_password, name, executor_version())
    agent = Agent(settings, api, runtime, workspace_root(settings.workspace_root), runtime_version=version)
    agent.install_signal_handlers()
    log.warning(
        "executor %s taking jobs from %s (%s runtime, up to %d at once)",
        name, ",".join(settings.queue_names), runtime.name, settings.maximum_num_jobs,
    )  # fmt: skip
    try:
        return agent.run()
    finally:
        api.close()
        if metrics_server:
            metrics_server.stop()


def cmd_test_vm(settings: ExecutorSettings, repo: str, revision: str, name_only: bool) -> int:
    from executor_agent import workspace as ws
    from executor_agent.config import make_executor_name
    from executor_agent.job import StopSignal
    from executor_agent.jobrunner import clone_env
    from executor_agent.logstream import LogEntry
    from executor_agent.protocol.jobs import JobSpec
    from executor_agent.protocol.wire import EXECUTOR_SCHEME
    from executor_agent.redaction import DEFAULT_REPLACEMENT, Redactor
    from executor_agent.runtimes import RuntimeUnavailable, make_runtime
    from executor_agent.runtimes.base import run_host_command

    name = make_executor_name()
    try:
        runtime = make_runtime(settings, name)
    except RuntimeUnavailable as exc:
        typer.echo(f"executor: runtime {settings.runtime.value}: {exc}", err=True)
        return CONFIG_EXIT_CODE
    try:
        runtime.check()
    except RuntimeUnavailable as exc:
        typer.echo(f"executor: {exc}", err=True)
        return 1
    workspace = ws.create(ws.workspace_root(settings.workspace_root), f"test-vm-{settings.vm_prefix}", 0, name)
    if repo:
        job = JobSpec(id=0, repositoryName=repo, commit=revision)
        redactor = Redactor({settings.frontend_password: DEFAULT_REPLACEMENT})
        # The shared secret reaches git through its environment, as a job's token does: never on a command line.
        env = clone_env(job, name, authorization=f"{EXECUTOR_SCHEME} {settings.frontend_password}")
        for key, argv in ws.clone_commands(job, settings.frontend_url, name):
            if key == "setup.git.checkout":
                # What the fetch just fetched: a symbolic revision such as HEAD names nothing in a fresh clone.
                argv = [*argv[:-1], "FETCH_HEAD"]
            entry = LogEntry(key, argv, redactor, 1 << 20)
            code = run_host_command(argv, workspace.path, entry, StopSignal(), env=env)
            entry.finish(code)
            if code != 0:
                typer.echo(f"executor: {key} failed with exit code {code}:\n{entry.output()}", err=True)
                workspace.remove()
                return 1
    sandbox = workspace.job_dir.name
    try:
        attach = runtime.start_sandbox(workspace, sandbox)
    except RuntimeUnavailable as exc:
        typer.echo(f"executor: {exc}", err=True)
        workspace.remove()
        return 1
    if name_only:
        typer.echo(sandbox)
    else:
        typer.echo(f"Sandbox {sandbox} is running on workspace {workspace.path}{' with ' + repo if repo else ''}.")
        typer.echo(f"Attach to it with:\n  {attach}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `executor` script; returns the exit code."""
    try:
        app(args=argv, prog_name="executor")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
