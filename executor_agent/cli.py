"""The `executor` command: `run` (default), `validate`, `install`, `test-vm`.

Configuration comes from the environment (EXECUTOR_*), as in the seeds' deployment guides.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys

from executor_agent.config import (
    CONFIG_EXIT_CODE,
    FIRECRACKER_UNAVAILABLE,
    ConfigError,
    ExecutorSettings,
    RuntimeName,
    load_settings,
    make_executor_name,
)

log = logging.getLogger("executor")
DESCRIPTION = """Runs jobs from a fleet server's queues in Docker containers (or host processes).

Required environment: EXECUTOR_FRONTEND_URL, EXECUTOR_FRONTEND_PASSWORD, EXECUTOR_QUEUE_NAME (or
EXECUTOR_QUEUE_NAMES). See docs/executor.md for every variable. Firecracker isolation is not available in this
build: set EXECUTOR_USE_FIRECRACKER=false (or EXECUTOR_RUNTIME=docker)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="executor", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="take jobs and run them until stopped (the default)")
    sub.add_parser("validate", help="check configuration, git, the runtime and the server; exit 1 on any problem")
    install = sub.add_parser("install", help="prepare this host: Docker Engine, daemon.json mirror, iptables rules")
    install.add_argument(
        "components",
        nargs="*",
        default=["all"],
        help="all (default), docker, docker-config, iptables-rules",
    )
    install.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    test_vm = sub.add_parser("test-vm", help="start a sandbox with the configured runtime and print how to attach")
    test_vm.add_argument("--repo", default="", help="repository (as the server names it) to clone into the sandbox")
    test_vm.add_argument("--revision", default="HEAD", help="commit or ref to check out (default HEAD)")
    test_vm.add_argument("--name-only", action="store_true", help="print only the sandbox's name")
    return parser


def _settings() -> ExecutorSettings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"executor: configuration error:\n{exc}", file=sys.stderr)
        raise SystemExit(CONFIG_EXIT_CODE) from None


def _setup_logging(settings: ExecutorSettings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request is too much at info level; the agent logs what matters itself.
    logging.getLogger("httpx").setLevel(max(settings.log_level, logging.WARNING))


def _refuse_firecracker(settings: ExecutorSettings) -> None:
    if settings.runtime == RuntimeName.FIRECRACKER:
        print(f"executor: {FIRECRACKER_UNAVAILABLE}", file=sys.stderr)
        raise SystemExit(CONFIG_EXIT_CODE)


def cmd_run(settings: ExecutorSettings) -> int:
    from executor_agent.apiclient import ApiClient
    from executor_agent.hostinfo import executor_version
    from executor_agent.loop import Agent
    from executor_agent.metrics import MetricsServer
    from executor_agent.runtimes import RuntimeUnavailable, make_runtime
    from executor_agent.workspace import workspace_root

    _refuse_firecracker(settings)
    name = make_executor_name()
    runtime = make_runtime(settings, name)
    try:
        version = runtime.check()
    except RuntimeUnavailable as exc:
        print(f"executor: {exc}", file=sys.stderr)
        return 1
    metrics_server = None
    if settings.metrics_addr:
        try:
            metrics_server = MetricsServer(settings.metrics_addr, settings.node_exporter_url)
        except OSError as exc:
            print(f"executor: EXECUTOR_METRICS_ADDR={settings.metrics_addr!r}: cannot listen: {exc}", file=sys.stderr)
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
    from executor_agent.job import JobSpec, StopSignal
    from executor_agent.logstream import LogEntry
    from executor_agent.redaction import DEFAULT_REPLACEMENT, Redactor
    from executor_agent.runtimes import RuntimeUnavailable, make_runtime
    from executor_agent.runtimes.base import run_host_command

    _refuse_firecracker(settings)
    name = make_executor_name()
    runtime = make_runtime(settings, name)
    try:
        runtime.check()
    except RuntimeUnavailable as exc:
        print(f"executor: {exc}", file=sys.stderr)
        return 1
    workspace = ws.create(ws.workspace_root(settings.workspace_root), f"test-vm-{settings.vm_prefix}", 0, name)
    if repo:
        job = JobSpec(id=0, repositoryName=repo, commit=revision)
        redactor = Redactor({settings.frontend_password: DEFAULT_REPLACEMENT})
        auth = f"token-executor {settings.frontend_password}"
        for key, argv in ws.clone_commands(job, settings.frontend_url, name, authorization=auth):
            entry = LogEntry(key, argv, redactor, 1 << 20)
            code = run_host_command(argv, workspace.path, entry, StopSignal())
            entry.finish(code)
            if code != 0:
                print(f"executor: {key} failed with exit code {code}:\n{entry.output()}", file=sys.stderr)
                workspace.remove()
                return 1
    sandbox = workspace.job_dir.name
    attach = runtime.start_sandbox(workspace, sandbox)
    if name_only:
        print(sandbox)
    else:
        print(f"Sandbox {sandbox} is running on workspace {workspace.path}{' with ' + repo if repo else ''}.")
        print(f"Attach to it with:\n  {attach}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack: how to see where a stuck job is waiting.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    args = _parser().parse_args(argv)
    command = args.command or "run"
    settings = _settings()
    _setup_logging(settings)
    if command == "run":
        return cmd_run(settings)
    if command == "validate":
        from executor_agent.validate import validate

        return validate(settings)
    if command == "install":
        from executor_agent.install import install

        try:
            return install(settings, args.components, args.dry_run, print)
        except ValueError as exc:
            print(f"executor install: {exc}", file=sys.stderr)
            return CONFIG_EXIT_CODE
    return cmd_test_vm(settings, args.repo, args.revision, args.name_only)


if __name__ == "__main__":
    sys.exit(main())
