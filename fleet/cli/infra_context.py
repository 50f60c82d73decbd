"""What the `fleet infra` commands share: the validated config, the Terraform working directory and runner.

Imported inside the commands: it pulls in python-terraform, the cloud status clients and the config models.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from pathlib import Path
from typing import NoReturn

import typer

from fleet.cli.errors import EXIT_CONFIG, fail
from fleet.infra import workdir as wd
from fleet.infra.config import Cloud, ConfigError, FleetConfig, load_config
from fleet.infra.terraform import TerraformError, TerraformRunner

PLAN_FILE = "fleet.tfplan"
PROVIDERS = {Cloud.AWS: "hashicorp/aws", Cloud.GOOGLE: "hashicorp/google"}


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


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        typer.echo("Nothing done.", err=True)
        raise typer.Exit(1)


def credential_lines(config: FleetConfig, outputs: dict[str, object]) -> list[str]:
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


def no_outputs(ctx: Context) -> NoReturn:
    fail(f"no outputs in {ctx.workdir}: run `fleet infra apply` first")
