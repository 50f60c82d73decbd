"""`fleet server`: the control plane."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import typer

from fleet.cli.errors import EXIT_CONFIG, fail, settings_error_line
from fleet.cli.helptext import examples

# uvicorn's httptools protocol sending each reply in one write (fleet/api/http_protocol.py); a string, so that
# `--workers N` processes import it themselves and this command's start-up does not.
HTTP_PROTOCOL = "fleet.api.http_protocol:HttpProtocol"

# `fleet server`, a single command: fleet.cli.main merges it into `fleet`.
app = typer.Typer()


@app.command(
    "server",
    epilog=examples(
        "FLEET_EXECUTORS_ACCESS_TOKEN=$(openssl rand -hex 32) FLEET_API_TOKEN=$(openssl rand -hex 32) fleet server",
        "fleet server --database-url postgresql+psycopg://fleet:pw@db/fleet --http-addr 0.0.0.0:3080 --workers 2",
    ),
)
def server(
    database_url: str = typer.Option(None, help="Overrides FLEET_DATABASE_URL (default sqlite:///./fleet.db)."),
    http_addr: str = typer.Option(None, help="Overrides FLEET_HTTP_ADDR (default 127.0.0.1:3080)."),
    external_url: str = typer.Option(None, help="Overrides FLEET_EXTERNAL_URL."),
    workers: int = typer.Option(
        None, help="Overrides FLEET_WORKERS (default 1): server processes on one address; more need PostgreSQL."
    ),
    log_level: str = typer.Option("info", envvar="FLEET_LOG_LEVEL", help="debug, info, warning or error."),
) -> None:
    """Run the control plane: job queues, the executor protocol, the job API, the dashboard and /metrics.

    Needs FLEET_EXECUTORS_ACCESS_TOKEN (at least 20 characters) and FLEET_API_TOKEN in the environment.
    """
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from fleet.app import create_app, store_config
    from fleet.db.dialect import DatabaseURLError, is_sqlite_url, redact_url
    from fleet.settings import ServerSettings
    from fleet.store import Store

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "database_url": database_url,
            "http_addr": http_addr,
            "external_url": external_url,
            "workers": workers,
        }.items()
        if v is not None
    }
    from executor_agent.settings_common import check_one_of
    from fleet.settings import LOG_LEVELS, unknown_names

    for line in unknown_names(os.environ):
        typer.echo(line, err=True)
    try:
        check_one_of(log_level, LOG_LEVELS, fold_case=True)
    except ValueError as exc:
        fail(f"FLEET_LOG_LEVEL (--log-level) {exc}", EXIT_CONFIG)
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        fail(_name_flags(settings_error_line(exc, "FLEET_"), overrides), EXIT_CONFIG)
    if settings.workers > 1 and is_sqlite_url(settings.database_url):
        fail(
            f"FLEET_WORKERS={settings.workers} needs PostgreSQL: SQLite takes writes from one process only; "
            "set FLEET_WORKERS=1 or FLEET_DATABASE_URL=postgresql+psycopg://…",
            EXIT_CONFIG,
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Bound before the database is touched: a listen address that cannot be used writes nothing.
    where = "--http-addr" if "http_addr" in overrides else "FLEET_HTTP_ADDR"
    try:
        listener = _bind(settings.host, settings.port)
    except OSError as exc:
        fail(f"{where} {settings.http_addr!r}: cannot listen there: {exc.strerror or exc}", EXIT_CONFIG)
    try:
        store = Store.open(settings.database_url, config=store_config(settings))
    except DatabaseURLError as exc:
        fail(f"FLEET_DATABASE_URL {exc}", EXIT_CONFIG)
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(settings.database_url, redact_url(settings.database_url))
        fail(f"FLEET_DATABASE_URL {redact_url(settings.database_url)!r} is unusable: {first}", EXIT_CONFIG)

    import uvicorn

    os.environ.setdefault("FLEET_URL", settings.resolved_external_url)
    if settings.workers > 1:
        store.close()  # migrations ran; every worker opens its own store
        listener.close()  # the supervisor binds it again and shares it with the workers
        # Workers are fresh interpreters that read FLEET_* themselves: hand them the command-line overrides too.
        for name, value in {**overrides, "log_level": log_level}.items():
            os.environ[f"FLEET_{name.upper()}"] = str(value)
        uvicorn.run(
            "fleet.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=log_level.lower(),
            access_log=log_level.lower() == "debug",
            timeout_graceful_shutdown=5,
            http=HTTP_PROTOCOL,
        )
        return
    config = uvicorn.Config(
        create_app(settings, store=store),
        log_level=log_level.lower(),
        access_log=log_level.lower() == "debug",
        timeout_graceful_shutdown=5,
        http=HTTP_PROTOCOL,
    )
    _serve(config, listener, settings.resolved_external_url)
    store.close()


def _name_flags(line: str, overrides: dict[str, Any]) -> str:
    """A bad value given as a flag is reported by the flag's name, not by the variable it overrides."""
    for name in overrides:
        line = line.replace(f"FLEET_{name.upper()} ", f"--{name.replace('_', '-')} ")
    return line


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _serve(config: Any, listener: socket.socket, url: str) -> None:
    import uvicorn

    class ReadyServer(uvicorn.Server):
        """Logs "ready" once the port is bound and serving, not when the application starts up."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                from fleet import __version__

                logging.getLogger("fleet.server").info("fleet server %s ready on %s", __version__, url)

    ReadyServer(config).run(sockets=[listener])
