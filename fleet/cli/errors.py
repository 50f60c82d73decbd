"""One-line errors and exit codes shared by the CLI commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

from executor_agent.settings_common import Problem, one_line

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_CONFIG = 2


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_error_line(exc: ValidationError, env_prefix: str) -> str:
    """Settings errors named by their variables: `FLEET_HTTP_ADDR 'x' is not HOST:PORT, ...; FLEET_API_TOKEN ...`."""

    def render(p: Problem) -> str:
        msg = "is required" if p.kind == "missing" else p.msg
        return f"{env_prefix}{(p.name or '?').upper()} {msg}"

    return one_line(exc, render)
