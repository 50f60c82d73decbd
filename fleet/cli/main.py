"""The `fleet` command line: the server, the job API from a terminal, and the fleet lifecycle.

Each command module defines its own Typer app; this module composes them into `fleet` (the modules import nothing
from here, so there is no import circle).
"""

from __future__ import annotations

import importlib

import typer

from fleet import __version__
from fleet.cli.helptext import examples

app = typer.Typer(
    name="fleet",
    help="executor-fleet control plane: run the server, submit and inspect jobs, manage the fleet.",
    no_args_is_help=True,
)


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


# Each top-level command: the module and the Typer app in it that holds it. A group's app is named (`infra`), a
# single command's app is not and its command is merged into `fleet`. `--help` lists them in this order.
COMMANDS = {
    "executors": ("jobs_cmd", "executors_app"),
    "server": ("server_cmd", "app"),
    "simulate": ("simulate", "app"),
    "status": ("status", "app"),
    "infra": ("infra", "infra_app"),
    "jobs": ("jobs_cmd", "jobs_app"),
    "queues": ("jobs_cmd", "queues_app"),
    "repos": ("jobs_cmd", "repos_app"),
}
_mounted: set[str] = set()


def _register(argv: list[str] | None = None) -> None:
    """Mount the sub-command apps on `app`; calling it again mounts only what is not mounted yet.

    With `argv`, only the command being run: typer builds a validator for every parameter of every mounted command
    at each start, so `fleet queues` does not pay for `fleet simulate`'s thirty options. `--help`, completion and
    unknown commands get them all. The modules import their heavy libraries (cloud SDKs, Terraform, SQLAlchemy,
    FastAPI) inside the commands.
    """
    import os

    first = next((a for a in argv or [] if not a.startswith("-")), None)
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    names = [first] if argv is not None and first in COMMANDS and not completing else list(COMMANDS)
    for name in names:
        if name in _mounted:
            continue
        module, attr = COMMANDS[name]
        app.add_typer(getattr(importlib.import_module(f"fleet.cli.{module}"), attr))
        _mounted.add(name)


def main() -> None:
    import sys

    _register(sys.argv[1:])
    app()
