"""`fleet infra init|plan|apply|destroy|output|status`: the fleet's lifecycle, driven through Terraform.

Terraform, the cloud SDKs and the config models are imported by the commands (fleet/cli/infra_context.py), so
`fleet --help` does not pay for them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.cli.helptext import examples
from fleet.cli.output import camel, json_out

infra_app = typer.Typer(
    name="infra",
    help="Create, change and remove the fleet described by fleet.toml, with Terraform and our modules.",
    no_args_is_help=True,
    epilog=examples("fleet infra init && fleet infra plan", "fleet infra apply --yes", "fleet infra status"),
)

DEFAULT_PATH = Path("fleet.toml")  # fleet.infra.config.DEFAULT_PATH, without importing the config models

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The fleet config file.")]
WorkdirOpt = Annotated[
    Path | None, typer.Option("--workdir", help="Terraform working directory; default .fleet/<name> by the config.")
]
ModulesOpt = Annotated[
    Path | None, typer.Option("--modules", help="Our terraform/<cloud> directory, if not the installed one.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@infra_app.command(
    "init", epilog=examples("fleet infra init", "fleet infra init -c prod.toml --plugin-dir /srv/tf-mirror")
)
def init_cmd(
    config: ConfigOpt = DEFAULT_PATH,
    workdir: WorkdirOpt = None,
    modules: ModulesOpt = None,
    plugin_dir: Annotated[
        Path | None,
        typer.Option(
            "--plugin-dir",
            envvar="FLEET_TERRAFORM_PLUGIN_DIR",
            help="Install providers only from this local mirror (no download), as `terraform init -plugin-dir`.",
        ),
    ] = None,
    reconfigure: Annotated[
        bool, typer.Option("--reconfigure", help="After changing [state]: start the new backend empty.")
    ] = False,
) -> None:
    """Write the Terraform working directory for the fleet and run `terraform init`."""
    from fleet.cli.infra_context import PROVIDERS, Context
    from fleet.infra.terraform import TerraformError, check_plugin_dir

    ctx = Context(config, workdir, modules, secret=False)
    args = ["-input=false", *(["-reconfigure"] if reconfigure else [])]
    if plugin_dir is not None:
        try:
            check_plugin_dir(plugin_dir, [PROVIDERS[ctx.config.cloud]])
        except TerraformError as exc:
            fail(str(exc), EXIT_CONFIG)
        args.append(f"-plugin-dir={plugin_dir.resolve()}")
    ctx.render()
    typer.echo(f"Terraform {ctx.tf.version}, working directory {ctx.workdir}")
    ctx.terraform("init", *args, failure="see above; re-run `fleet infra init` once fixed")
    typer.echo("Initialized. Next: `fleet infra plan`.")


@infra_app.command("plan", epilog=examples("fleet infra plan", "fleet infra plan -c prod.toml"))
def plan_cmd(config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None) -> None:
    """Show what `apply` would change, with a summary by resource type."""
    from fleet.cli.infra_context import Context

    ctx = Context.ready(config, workdir, modules)
    try:
        ctx.plan()
    finally:
        ctx.drop_plan()


@infra_app.command("apply", epilog=examples("fleet infra apply", "fleet infra apply --yes"))
def apply_cmd(
    config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None, yes: YesOpt = False
) -> None:
    """Create or update the fleet: plan, show the summary, confirm, apply exactly that plan."""
    from fleet.cli.infra_context import PLAN_FILE, Context, confirm

    ctx = Context.ready(config, workdir, modules)
    try:
        if not ctx.plan():
            typer.echo("No changes: the fleet matches fleet.toml.")
            return
        confirm(f"Apply these changes to fleet {ctx.config.name!r}?", yes)
        ctx.terraform(
            "apply",
            "-input=false",
            PLAN_FILE,
            failure="the state keeps what was created; fix the cause above and run `fleet infra apply` again",
        )
    finally:
        ctx.drop_plan()
    typer.echo("Applied. `fleet infra output --credentials` prints the metrics publisher's settings.")


@infra_app.command("destroy", epilog=examples("fleet infra destroy", "fleet infra destroy --yes"))
def destroy_cmd(
    config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None, yes: YesOpt = False
) -> None:
    """Remove every resource of the fleet. Running jobs are killed with their instances."""
    from fleet.cli.infra_context import Context, confirm

    ctx = Context.ready(config, workdir, modules)
    confirm(f"Destroy every resource of fleet {ctx.config.name!r} in {ctx.config.region}?", yes)
    ctx.terraform(
        "destroy", "-input=false", "-auto-approve", failure="run `fleet infra destroy` again to remove what is left"
    )
    typer.echo("Destroyed.")


@infra_app.command(
    "output",
    epilog=examples(
        "fleet infra output", "fleet infra output --credentials > publisher.env", "fleet infra output --json"
    ),
)
def output_cmd(
    config: ConfigOpt = DEFAULT_PATH,
    workdir: WorkdirOpt = None,
    modules: ModulesOpt = None,
    credentials: Annotated[
        bool, typer.Option("--credentials", help="Print the metrics-publisher environment (secrets included).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="All outputs as JSON (sensitive ones included).")] = False,
) -> None:
    """Print the fleet's Terraform outputs; `--credentials` prints ready-to-use metrics-publisher settings."""
    from fleet.cli.infra_context import Context, credential_lines, no_outputs
    from fleet.infra.terraform import TerraformError

    ctx = Context(config, workdir, modules, secret=False)
    ctx.require_init()
    try:
        outputs = ctx.tf.outputs()
    except TerraformError as exc:
        fail(str(exc))
    if not outputs:
        no_outputs(ctx)
    if credentials:
        typer.echo("\n".join(credential_lines(ctx.config, outputs)))
    elif as_json:
        typer.echo(json.dumps(outputs, indent=2))
    else:
        for name, value in sorted(outputs.items()):
            shown = "(sensitive: use --credentials or --json)" if "secret" in name or "credentials" in name else value
            typer.echo(f"{name} = {json.dumps(shown) if not isinstance(shown, str) else shown}")


@infra_app.command("status", epilog=examples("fleet infra status", "fleet infra status --json"))
def infra_status_cmd(
    config: ConfigOpt = DEFAULT_PATH,
    workdir: WorkdirOpt = None,
    modules: ModulesOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: workdir, resources (count) and pools (camelCase keys).")
    ] = False,
) -> None:
    """Resources in the Terraform state and, per pool, the instance group as the cloud reports it."""
    from fleet.cli.infra_context import Context
    from fleet.infra.config import Cloud
    from fleet.infra.status import StatusError, aws_groups, google_groups
    from fleet.infra.terraform import TerraformError

    ctx = Context(config, workdir, modules, secret=False)
    ctx.require_init()
    try:
        listed = ctx.tf.capture("state", "list")
    except TerraformError as exc:
        fail(str(exc))
    resources = [line for line in listed.splitlines() if line.strip()]
    names = [ctx.config.group_name(p) for p in ctx.config.pools]
    try:
        groups = aws_groups(ctx.config, names) if ctx.config.cloud is Cloud.AWS else google_groups(ctx.config, names)
    except StatusError as exc:
        fail(str(exc))
    pools = {p.name: asdict(groups[ctx.config.group_name(p)]) for p in ctx.config.pools}
    if as_json:
        json_out(camel({"workdir": str(ctx.workdir), "resources": len(resources), "pools": pools}))
        return
    typer.echo(f"{ctx.workdir}: {len(resources)} resources in the Terraform state")
    for name, g in pools.items():
        if g["found"]:
            typer.echo(
                f"  {name}: {g['name']} desired {g['desired']}, in service {g['in_service']}, pending {g['pending']}"
            )
        else:
            typer.echo(f"  {name}: {g['name']} not found (not applied yet?)")
