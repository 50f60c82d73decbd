"""`fleet infra` refusing to run, with the reason and the fix: no binary, old binary, bad plugin dir, no init,
no secret. None of these reach a cloud API."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet.cli.main import _register, app
from fleet.infra.terraform import summarize_plan
from fleet.infra.workdir import render

_register()
runner = CliRunner()

CONFIG = """
cloud = "aws"
name = "errs"
region = "us-east-1"
zone = "us-east-1a"
fleet_url = "http://10.0.0.2:3080"
executor_secret_env = "ERRS_SECRET"
executor_image = "ami-12c6146b"

[[pools]]
name = "batches"
queue = "batches"
machine_type = "t3.micro"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ERRS_SECRET", "x" * 32)
    monkeypatch.delenv("FLEET_TERRAFORM_BIN", raising=False)
    path = tmp_path / "fleet.toml"
    path.write_text(CONFIG)
    return path


def infra(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["infra", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_missing_terraform_binary(config: Path) -> None:
    code, _, err = infra("init", "-c", str(config), env={"FLEET_TERRAFORM_BIN": "/nonexistent/terraform"})
    assert code == 1
    assert "terraform not found on FLEET_TERRAFORM_BIN=/nonexistent/terraform: install Terraform 1.9" in err


def test_too_old_terraform(config: Path, tmp_path: Path) -> None:
    # No old Terraform release can be installed here (no network); this script answers `version -json` as
    # Terraform 1.5.7 does, which is all the version check reads.
    fake = tmp_path / "terraform"
    fake.write_text('#!/bin/sh\necho \'{"terraform_version": "1.5.7", "platform": "linux_amd64"}\'\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    code, _, err = infra("init", "-c", str(config), env={"FLEET_TERRAFORM_BIN": str(fake)})
    assert code == 1
    assert "Terraform 1.5.7" in err and "too old" in err and "1.9 or newer" in err


def test_plugin_dir_without_the_provider(config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "plugins"
    (empty / "registry.terraform.io" / "hashicorp" / "random").mkdir(parents=True)
    code, _, err = infra("init", "-c", str(config), "--plugin-dir", str(empty))
    assert code == 2
    assert f"--plugin-dir {empty} has no hashicorp/aws provider" in err
    assert "terraform providers mirror" in err
    assert not (config.parent / ".fleet" / "errs" / "main.tf.json").exists()  # nothing half-written


@pytest.mark.parametrize("command", ["plan", "apply", "destroy", "output", "status"])
def test_commands_before_init(config: Path, command: str) -> None:
    code, _, err = infra(command, "-c", str(config))
    assert code == 2
    assert "is not initialized: run `fleet infra init` first" in err


def test_missing_secret(config: Path) -> None:
    code, _, err = infra("plan", "-c", str(config), env={"ERRS_SECRET": None})
    assert code == 2
    assert "executor_secret_env: environment variable ERRS_SECRET is not set" in err


def _declared(module_dir: Path, kind: str) -> dict[str, str]:
    """Blocks of one kind (`variable`/`output`) declared in a module: name -> block text."""
    text = "\n".join(p.read_text() for p in module_dir.glob("*.tf"))
    return dict(re.findall(rf'^{kind} "([^"]+)" {{(.*?)^}}', text, flags=re.S | re.M))


@pytest.mark.parametrize("cloud", ["aws", "google"])
def test_rendered_modules_match_the_module_interfaces(config: Path, tmp_path: Path, cloud: str) -> None:
    # Terraform cannot validate the Google side here (no google provider offline), so the rendered calls are
    # checked against the variables and outputs the modules declare: every argument exists, none required is missing.
    from fleet.infra.config import load_config

    if cloud == "google":
        config.write_text(
            CONFIG.replace('cloud = "aws"', 'cloud = "google"\nproject = "acme"').replace("us-east-1", "us-central1")
        )
    loaded = load_config(config)
    root = Path(__file__).resolve().parents[3] / "terraform" / cloud
    work = tmp_path / "wd"
    work.mkdir()
    main, values = render(loaded, root, work)
    assert set(main["provider"]) == {cloud}
    outputs_used = re.findall(r"module\.(\w+)\.(\w+)", json.dumps(main))
    outputs_used += [("executors", name) for name in re.findall(r"=> m\.(\w+)", json.dumps(main["output"]))]
    for name, block in main["module"].items():
        module_dir = (work / block["source"]).resolve()
        variables = _declared(module_dir, "variable")
        arguments = set(block) - {"source", "for_each", "depends_on"}
        assert arguments <= set(variables), f"{name}: unknown {arguments - set(variables)}"
        required = {v for v, body in variables.items() if "default" not in body}
        assert required <= arguments, f"{name}: missing {required - arguments}"
    for module, output in outputs_used:
        module_dir = (work / main["module"][module]["source"]).resolve()
        assert output in _declared(module_dir, "output"), f"module.{module} has no output {output}"
    assert "executor_secret" not in values and main["variable"]["executor_secret"]["sensitive"] is True


def test_rendered_workdir_keeps_secrets_out(config: Path, tmp_path: Path) -> None:
    from fleet.infra.config import load_config

    root = Path(__file__).resolve().parents[3] / "terraform" / "aws"
    (tmp_path / "wd").mkdir()
    main, values = render(load_config(config), root, tmp_path / "wd")
    assert main["variable"]["executor_secret"]["sensitive"] is True
    assert "executor_secret" not in values
    assert main["module"]["executors"]["sourcegraph_executor_proxy_password"] == "${var.executor_secret}"
    assert main["module"]["executors"]["source"].startswith("../")
    assert "x" * 32 not in json.dumps([main, values])
    assert values["pools"]["batches"]["queue_name"] == "batches"
    assert main["terraform"]["backend"] == {"local": {"path": "terraform.tfstate"}}
    assert os.path.isdir(tmp_path / "wd" / main["module"]["executors"]["source"])


def test_plan_summary_counts() -> None:
    doc = {
        "resource_changes": [
            {"type": "aws_vpc", "change": {"actions": ["create"]}},
            {"type": "aws_instance", "change": {"actions": ["create"]}},
            {"type": "aws_instance", "change": {"actions": ["delete", "create"]}},
            {"type": "aws_autoscaling_group", "change": {"actions": ["update"]}},
            {"type": "aws_iam_user", "change": {"actions": ["delete"]}},
            {"type": "aws_region", "change": {"actions": ["read"]}},
            {"type": "aws_subnet", "change": {"actions": ["no-op"]}},
        ]
    }
    s = summarize_plan(doc)
    assert (s.add, s.change, s.destroy) == (3, 1, 2)
    assert s.lines() == [
        "Plan: 3 to add, 1 to change, 2 to destroy.",
        "  create: 1 aws_instance, 1 aws_vpc",
        "  update: 1 aws_autoscaling_group",
        "  replace: 1 aws_instance",
        "  delete: 1 aws_iam_user",
    ]
    assert summarize_plan({"resource_changes": []}).empty
