"""Renders the executor VM startup script exactly as the Terraform modules do: the shared `executor-env` module
makes the environment file and `templatefile()` puts it into the module's startup script template. Real
Terraform, no providers needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
ENV_MODULE = PROJECT / "terraform" / "common" / "executor-env"
KEYWORDS = {"if", "else", "endif", "for", "endfor", "in", "true", "false", "null"}


class TerraformError(RuntimeError):
    pass


def startup_templates() -> list[Path]:
    return sorted(PROJECT.glob("terraform/*/modules/executors/*.tftpl"))


def template_variables(template: Path) -> set[str]:
    """Names a template reads, so that the test supplies each (unknown ones as empty strings)."""
    names: set[str] = set()
    for block in re.findall(r"[$%]\{(.*?)\}", template.read_text(), flags=re.S):
        for name in re.findall(r"(?<![\w.\"])([a-z_][a-z0-9_]*)\b(?!\s*\()", block):
            names.add(name)
    return names - KEYWORDS


def render(template: Path, env: dict[str, str], workdir: Path, **values: str) -> str:
    if shutil.which("terraform") is None:
        raise TerraformError("terraform is not installed; see the Terraform install step in docs/terraform.md")
    workdir.mkdir(parents=True, exist_ok=True)
    variables = {name: "" for name in template_variables(template)} | values
    variables["env_file"] = "__ENV_FILE__"
    (workdir / "main.tf").write_text(
        f"""
variable "env" {{
  type = map(string)
}}
variable "vars" {{
  type = map(string)
}}
module "env" {{
  source = "{ENV_MODULE}"
  env    = var.env
}}
output "script" {{
  value     = templatefile("{template}", merge(var.vars, {{ env_file = module.env.content }}))
  sensitive = true
}}
"""
    )
    (workdir / "terraform.tfvars.json").write_text(json.dumps({"env": env, "vars": variables}))
    for argv in (
        ["terraform", "init", "-input=false", "-no-color"],
        ["terraform", "apply", "-auto-approve", "-input=false", "-no-color"],
        ["terraform", "output", "-raw", "script"],
    ):
        done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise TerraformError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout
