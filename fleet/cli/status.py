"""`fleet status`: per pool, the queue, the instance group and the executors, with warnings when they disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.cli.main import app
from fleet.infra.config import DEFAULT_PATH, ConfigError, load_config
from fleet.infra.status import PoolStatus, StatusError, collect

COLUMNS = ["pool", "queue", "size", "queued", "running", "oldest wait", "desired", "in service", "pending", "executors"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _row(st: PoolStatus) -> list[str]:
    g = st.group
    group_cells = [str(g.desired), str(g.in_service), str(g.pending)] if g.found else ["?", "?", "?"]
    return [
        st.pool,
        st.queue,
        str(st.size),
        str(st.queued),
        str(st.processing),
        _duration(st.oldest_queued_age_seconds),
        *group_cells,
        f"{st.executors_healthy} healthy / {st.executors_seen}",
    ]


def render(statuses: list[PoolStatus]) -> str:
    rows = [COLUMNS, *(_row(st) for st in statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for st in statuses:
        lines.extend(f"warning: {st.pool}: {w}" for w in st.warnings)
    return "\n".join(lines)


@app.command("status")
def status_cmd(
    config_path: Annotated[Path, typer.Option("--config", "-c", help="The fleet config file.")] = DEFAULT_PATH,
    server_url: Annotated[
        str | None, typer.Option("--server", help="Fleet server URL for the job API; default FLEET_URL or fleet_url.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Per pool: queue size and oldest wait (fleet server), desired / in-service / pending instances (cloud),
    executors seen, and warnings when these disagree. Needs FLEET_API_TOKEN and the cloud's credentials."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    try:
        statuses = collect(config, server_url)
    except StatusError as exc:
        fail(str(exc))
    if as_json:
        doc = {"cloud": config.cloud.value, "region": config.region, "pools": [s.to_json() for s in statuses]}
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(render(statuses))
