"""`fleet status`: per pool, the queue, the instance group and the executors, with warnings when they disagree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.cli.helptext import examples
from fleet.cli.output import camel, duration, json_out

if TYPE_CHECKING:
    from fleet.infra.status import PoolStatus

DEFAULT_PATH = Path("fleet.toml")  # fleet.infra.config.DEFAULT_PATH, without importing the config models

COLUMNS = ["pool", "queue", "size", "queued", "running", "oldest wait", "desired", "in service", "pending", "executors"]


def _row(st: PoolStatus) -> list[str]:
    g = st.group
    group_cells = [str(g.desired), str(g.in_service), str(g.pending)] if g.found else ["?", "?", "?"]
    return [
        st.pool,
        st.queue,
        str(st.size),
        str(st.queued),
        str(st.processing),
        duration(st.oldest_queued_age_seconds),
        *group_cells,
        f"{st.executors_healthy} healthy of {st.executors_seen}",
    ]


def render(statuses: list[PoolStatus]) -> str:
    rows = [COLUMNS, *(_row(st) for st in statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for st in statuses:
        lines.extend(f"warning: {st.pool}: {w}" for w in st.warnings)
    return "\n".join(lines)


# `fleet status`, a single command: fleet.cli.main merges it into `fleet`.
app = typer.Typer()


@app.command("status", epilog=examples("fleet status", "fleet status -c prod.toml --json"))
def status_cmd(
    config_path: Annotated[Path, typer.Option("--config", "-c", help="The fleet config file.")] = DEFAULT_PATH,
    server_url: Annotated[
        str | None, typer.Option("--server", help="Fleet server URL for the job API; default FLEET_URL or fleet_url.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (camelCase keys, as the API): cloud, region, pools[].")
    ] = False,
) -> None:
    """Per pool: queue size and oldest wait (fleet server), desired / in-service / pending instances (cloud),
    executors seen, and warnings when these disagree. Needs FLEET_API_TOKEN and the cloud's credentials."""
    from fleet.infra.config import ConfigError, load_config
    from fleet.infra.status import StatusError, collect

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    try:
        statuses = collect(config, server_url)
    except StatusError as exc:
        fail(str(exc))
    if as_json:
        json_out(
            camel({"cloud": config.cloud.value, "region": config.region, "pools": [s.to_json() for s in statuses]})
        )
        return
    typer.echo(render(statuses))
