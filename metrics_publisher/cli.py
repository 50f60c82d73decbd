"""`metrics-publisher`: publishes every queue's size for the autoscalers (docs/metrics-publisher.md)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Annotated

import typer
from prometheus_client import disable_created_metrics

from executor_agent.settings_common import split_host_port
from metrics_publisher.config import ConfigError, PublisherSettings, load_settings
from metrics_publisher.durations import format_duration
from metrics_publisher.http_server import StatusServer
from metrics_publisher.publisher import Publisher
from metrics_publisher.source import FleetQueues
from metrics_publisher.telemetry import Telemetry
from metrics_publisher.wiring import build_backends, call_timeout, cloud_targets

EXIT_ROUND_FAILED = 1
EXIT_CONFIG = 2
_LEVELS = {"dbug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _environment_help() -> str:
    lines = ["Configuration (environment variables):", ""]
    for field in PublisherSettings.model_fields.values():
        lines.append(f"  {field.alias}: {field.description}")
    lines += [
        "",
        "boto3's own AWS_ENDPOINT_URL (and AWS_* credential chain) is honoured for CloudWatch.",
        "Exit status: 0 ok; 1 the --once round failed; 2 bad configuration (nothing was sent).",
    ]
    return "\n\n".join(lines)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # only here: reading package metadata costs a tenth of a second

        typer.echo(f"metrics-publisher {version('executor-fleet')}")
        raise typer.Exit()


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.command(
    help="Publish the fleet's queue sizes to CloudWatch, Cloud Monitoring and/or Prometheus every "
    "EXECUTOR_METRIC_PUBLISH_INTERVAL, for the executor autoscalers.",
    epilog=_environment_help(),
)
def run(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Publish one round and exit (cron-style use).")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be published instead of sending it.")
    ] = False,
) -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail_config(str(exc))
    level = _LEVELS.get(settings.log_level, logging.CRITICAL)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s metrics-publisher %(message)s", stream=sys.stderr
    )
    for chatty in ("httpx", "httpcore", "botocore", "urllib3", "google"):
        # Client libraries log every request at info; the publisher reports rounds itself.
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    telemetry = Telemetry()
    serve = not once and settings.prometheus_addr != "off"
    try:
        backends = build_backends(settings, telemetry, dry_run=dry_run, with_prometheus=serve)
    except ConfigError as exc:
        _fail_config(str(exc))
    if not backends:
        _fail_config(
            "EXECUTOR_METRIC_AWS_REGION / EXECUTOR_METRIC_GCP_PROJECT_ID: nothing to publish to; "
            "enable a cloud, keep EXECUTOR_METRIC_PROMETHEUS_ADDR on, or use --dry-run"
        )
    source = FleetQueues(settings.fleet_url, settings.fleet_api_token.get_secret_value(), call_timeout(settings))
    publisher = Publisher(
        source,
        backends,
        interval=settings.publish_interval,
        allocations=settings.allocations,
        groups=settings.queue_groups,
        telemetry=telemetry,
    )
    server = _start_server(settings, publisher, telemetry) if serve else None
    _announce(settings, dry_run)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if once:
            ok = publisher.run_round(wait=3 * call_timeout(settings), stop=stop).ok
            raise typer.Exit(0 if ok else EXIT_ROUND_FAILED)
        publisher.run(stop)
        logging.getLogger("metrics_publisher").info("stopping")
    finally:
        if server is not None:
            server.stop()
        publisher.close()


def _start_server(settings: PublisherSettings, publisher: Publisher, telemetry: Telemetry) -> StatusServer:
    host, port = split_host_port(settings.prometheus_addr, "0.0.0.0")
    try:
        server = StatusServer(host, port, telemetry.registry, publisher.health)
    except OSError as exc:
        _fail_config(
            f"EXECUTOR_METRIC_PROMETHEUS_ADDR: cannot listen on {settings.prometheus_addr!r} "
            f"({exc.strerror}); pick a free HOST:PORT or off"
        )
    server.start()
    logging.getLogger("metrics_publisher").info("serving /metrics and /healthz on %s", settings.prometheus_addr)
    return server


def _announce(settings: PublisherSettings, dry_run: bool) -> None:
    log = logging.getLogger("metrics_publisher")
    targets = ", ".join(t[2] for t in cloud_targets(settings)) or "no cloud"
    log.info(
        "reading %s every %s; publishing to %s%s",
        settings.fleet_url,
        format_duration(settings.publish_interval),
        targets,
        " (dry run: printing only)" if dry_run else "",
    )


def _fail_config(message: str) -> None:
    typer.echo(f"metrics-publisher: {message}", err=True)
    raise typer.Exit(EXIT_CONFIG)


def main() -> None:
    disable_created_metrics()  # `*_created` series double every counter and no dashboard reads them
    app()
