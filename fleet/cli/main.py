"""The `fleet` command line: the server, the job API from a terminal, and the fleet lifecycle."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fleet",
    help="executor-fleet control plane: run the server, submit and inspect jobs, manage the fleet.",
    no_args_is_help=True,
    add_completion=False,
)


def _register() -> None:
    # Sub-command modules register themselves on `app`; importing them here keeps `main` the only entry point.
    from fleet.cli import infra, jobs_cmd, server_cmd, simulate, status  # noqa: F401


def main() -> None:
    _register()
    app()
