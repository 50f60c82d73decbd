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


def _register() -> None:
    # Sub-command modules register themselves on `app`; importing them here keeps `main` the only entry point.
    # They import their heavy libraries (cloud SDKs, Terraform, SQLAlchemy, FastAPI) inside the commands.
    from fleet.cli import infra, jobs_cmd, server_cmd, simulate, status  # noqa: F401


def main() -> None:
    _register()
    app()
