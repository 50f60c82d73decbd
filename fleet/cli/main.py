"""The `fleet` command line: the server, the job API from a terminal, and the fleet lifecycle."""

from __future__ import annotations

import typer

from fleet import __version__

app = typer.Typer(
    name="fleet",
    help="executor-fleet control plane: run the server, submit and inspect jobs, manage the fleet.",
    no_args_is_help=True,
)


def examples(*lines: str) -> str:
    """The `Examples:` block every command's --help ends with."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleet {__version__}")
        raise typer.Exit()


@app.callback(
    epilog=examples(
        "fleet server",
        "fleet jobs submit job.json --wait",
        "fleet queues --json",
        "fleet --install-completion bash",
    )
)
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """executor-fleet control plane: run the server, submit and inspect jobs, manage the fleet.

    FLEET_URL (default http://127.0.0.1:3080) and FLEET_API_TOKEN point the job commands at a server.
    """


# Which module registers each top-level command (see _register).
COMMAND_MODULES = {
    "jobs": "jobs_cmd",
    "queues": "jobs_cmd",
    "executors": "jobs_cmd",
    "repos": "jobs_cmd",
    "server": "server_cmd",
    "infra": "infra",
    "simulate": "simulate",
    "status": "status",
}


def _register(argv: list[str] | None = None) -> None:
    """Import the sub-command modules, which register themselves on `app`.

    With `argv`, only the module of the command being run: typer builds a validator for every parameter of every
    registered command at each start, so `fleet queues` does not pay for `fleet simulate`'s thirty options.
    `--help`, completion and unknown commands get them all. The modules import their heavy libraries (cloud SDKs,
    Terraform, SQLAlchemy, FastAPI) inside the commands.
    """
    import importlib
    import os

    first = next((a for a in argv or [] if not a.startswith("-")), None)
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    if argv is not None and first in COMMAND_MODULES and not completing:
        names = [COMMAND_MODULES[first]]
    else:
        names = sorted(set(COMMAND_MODULES.values()))
    for name in names:
        importlib.import_module(f"fleet.cli.{name}")


def main() -> None:
    import sys

    _register(sys.argv[1:])
    app()
