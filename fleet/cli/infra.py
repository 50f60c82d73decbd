"""`fleet infra init|plan|apply|destroy|output|status`: the fleet's lifecycle, driven through Terraform."""

from __future__ import annotations

import base64
import binascii
import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.cli.main import app
from fleet.infra import workdir as wd
from fleet.infra.config import DEFAULT_PATH, Cloud, ConfigError, FleetConfig, load_config
from fleet.infra.status import StatusError, aws_groups, google_groups
from fleet.infra.terraform import TerraformError, TerraformRunner, check_plugin_dir

infra_app = typer.Typer(
    help="Create, change and remove the fleet described by fleet.toml, with Terraform and our modules.",
    no_args_is_help=True,
)
app.add_typer(infra_app, name="infra")

PLAN_FILE = "fleet.tfplan"
PROVIDERS = {Cloud.AWS: "hashicorp/aws", Cloud.GOOGLE: "hashicorp/google"}

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The fleet config file.")]
WorkdirOpt = Annotated[
    Path | None, typer.Option("--workdir", help="Terraform working directory; default .fleet/<name> by the config.")
]
ModulesOpt = Annotated[
    Path | None, typer.Option("--modules", help="Our terraform/<cloud> directory, if not the installed one.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class Context:
    """What every subcommand needs: the validated config, the working directory and a Terraform runner."""

    def __init__(self, config_path: Path, workdir: Path | None, modules: Path | None, secret: bool) -> None:
        try:
            self.config: FleetConfig = load_config(config_path)
            self.root = wd.module_root(self.config, modules)
            env = {f"TF_VAR_{wd.SECRET_VARIABLE}": self.config.executor_secret()} if secret else {}
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        self.workdir = workdir or config_path.resolve().parent / ".fleet" / self.config.name
        try:
            self.tf = TerraformRunner(self.workdir, env)
        except TerraformError as exc:
            fail(str(exc))

    @classmethod
    def ready(cls, config_path: Path, workdir: Path | None, modules: Path | None) -> Context:
        """For plan/apply/destroy: the secret in the environment, an initialized and freshly rendered workdir."""
        ctx = cls(config_path, workdir, modules, secret=True)
        ctx.require_init()
        ctx.render()
        return ctx

    def render(self) -> None:
        try:
            wd.write(self.config, self.workdir, self.root)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)

    def require_init(self) -> None:
        if not (self.workdir / ".terraform").is_dir():
            fail(f"{self.workdir} is not initialized: run `fleet infra init` first", EXIT_CONFIG)

    def terraform(self, command: str, *args: str, failure: str) -> None:
        code = self.tf.run(command, *args)
        if code != 0:
            fail(f"terraform {command} failed (exit {code}): {failure}", code)

    def plan(self, *extra: str) -> bool:
        """Plan into a file and print the summary; True when there is something to do."""
        self.terraform("plan", "-input=false", f"-out={PLAN_FILE}", *extra, failure="fix the error above and re-run")
        try:
            summary = self.tf.show_plan(PLAN_FILE)
        except TerraformError as exc:
            fail(str(exc))
        typer.echo("\n".join(summary.lines()))
        return not summary.empty

    def drop_plan(self) -> None:
        # A saved plan holds every variable's value, the executor secret included: it must not outlive the run.
        (self.workdir / PLAN_FILE).unlink(missing_ok=True)


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        typer.echo("Nothing done.", err=True)
        raise typer.Exit(1)


@infra_app.command("init")
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


@infra_app.command("plan")
def plan_cmd(config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None) -> None:
    """Show what `apply` would change, with a summary by resource type."""
    ctx = Context.ready(config, workdir, modules)
    try:
        ctx.plan()
    finally:
        ctx.drop_plan()


@infra_app.command("apply")
def apply_cmd(
    config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None, yes: YesOpt = False
) -> None:
    """Create or update the fleet: plan, show the summary, confirm, apply exactly that plan."""
    ctx = Context.ready(config, workdir, modules)
    try:
        if not ctx.plan():
            typer.echo("No changes: the fleet matches fleet.toml.")
            return
        _confirm(f"Apply these changes to fleet {ctx.config.name!r}?", yes)
        ctx.terraform(
            "apply",
            "-input=false",
            PLAN_FILE,
            failure="the state keeps what was created; fix the cause above and run `fleet infra apply` again",
        )
    finally:
        ctx.drop_plan()
    typer.echo("Applied. `fleet infra output --credentials` prints the metrics publisher's settings.")


@infra_app.command("destroy")
def destroy_cmd(
    config: ConfigOpt = DEFAULT_PATH, workdir: WorkdirOpt = None, modules: ModulesOpt = None, yes: YesOpt = False
) -> None:
    """Remove every resource of the fleet. Running jobs are killed with their instances."""
    ctx = Context.ready(config, workdir, modules)
    _confirm(f"Destroy every resource of fleet {ctx.config.name!r} in {ctx.config.region}?", yes)
    ctx.terraform(
        "destroy", "-input=false", "-auto-approve", failure="run `fleet infra destroy` again to remove what is left"
    )
    typer.echo("Destroyed.")


def _credential_lines(config: FleetConfig, outputs: dict[str, object]) -> list[str]:
    env: dict[str, str] = {"EXECUTOR_METRIC_ENVIRONMENT_LABEL": config.metrics_environment}
    if config.cloud is Cloud.AWS:
        env |= {
            "EXECUTOR_METRIC_AWS_NAMESPACE": wd.METRICS_NAMESPACE,
            "EXECUTOR_METRIC_AWS_REGION": config.region,
            "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID": str(outputs["metric_writer_access_key_id"]),
            "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY": str(outputs["metric_writer_secret_key"]),
        }
    else:
        try:
            key = base64.b64decode(str(outputs["metric_writer_credentials_file"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            fail("metric_writer_credentials_file is not base64-encoded JSON; check the credentials module")
        env |= {
            "EXECUTOR_METRIC_GCP_PROJECT_ID": str(config.project),
            "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": key,
        }
    return [f"{k}={shlex.quote(v)}" for k, v in env.items()]


def _no_outputs(ctx: Context) -> NoReturn:
    fail(f"no outputs in {ctx.workdir}: run `fleet infra apply` first")


@infra_app.command("output")
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
    ctx = Context(config, workdir, modules, secret=False)
    ctx.require_init()
    try:
        outputs = ctx.tf.outputs()
    except TerraformError as exc:
        fail(str(exc))
    if not outputs:
        _no_outputs(ctx)
    if credentials:
        typer.echo("\n".join(_credential_lines(ctx.config, outputs)))
    elif as_json:
        typer.echo(json.dumps(outputs, indent=2))
    else:
        for name, value in sorted(outputs.items()):
            shown = "(sensitive: use --credentials or --json)" if "secret" in name or "credentials" in name else value
            typer.echo(f"{name} = {json.dumps(shown) if not isinstance(shown, str) else shown}")


@infra_app.command("status")
def infra_status_cmd(
    config: ConfigOpt = DEFAULT_PATH,
    workdir: WorkdirOpt = None,
    modules: ModulesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Resources in the Terraform state and, per pool, the instance group as the cloud reports it."""
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
        doc = {"workdir": str(ctx.workdir), "resources": len(resources), "pools": pools}
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"{ctx.workdir}: {len(resources)} resources in the Terraform state")
    for name, g in pools.items():
        if g["found"]:
            typer.echo(
                f"  {name}: {g['name']} desired {g['desired']}, in service {g['in_service']}, pending {g['pending']}"
            )
        else:
            typer.echo(f"  {name}: {g['name']} not found (not applied yet?)")
