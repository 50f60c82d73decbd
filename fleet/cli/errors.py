"""One-line errors and exit codes shared by the CLI commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_CONFIG = 2


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_error_line(exc: ValidationError, env_prefix: str) -> str:
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "is required"
        parts.append(f"{env_prefix}{field.upper()} {msg}")
    return "; ".join(parts)
