"""Renders the executor VM startup script as the Terraform executors modules do: the shared `executor-env` module
makes the environment file (and the setup fragment around it), and `templatefile()` puts the module's outputs into
the startup script template, bound to the template variables the executors module's main.tf binds them to. Real
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
    found = sorted(PROJECT.glob("terraform/*/modules/executors/startup*.tftpl"))
    # An empty list would make pytest skip the test silently; a missing template is a failure.
    if not found:
        raise RuntimeError("no terraform/*/modules/executors/startup*.tftpl found: the executor modules are missing")
    return found


def template_variables(template: Path) -> set[str]:
    """Names a template reads, so that the test supplies each (unknown ones as empty strings)."""
    names: set[str] = set()
    for block in re.findall(r"[$%]\{(.*?)\}", template.read_text(), flags=re.S):
        for name in re.findall(r"(?<![\w.\"])([a-z_][a-z0-9_]*)\b(?!\s*\()", block):
            names.add(name)
    return names - KEYWORDS


def env_module_bindings(template: Path) -> dict[str, str]:
    """Template variables the executors module fills from the executor-env module: {template var: output}."""
    main = (template.parent / "main.tf").read_text()
    call = re.search(
        r'templatefile\("\$\{path\.module\}/' + re.escape(template.name) + r'",\s*\{(.*?)\}\)',
        main,
        flags=re.S,
    )
    if call is None:
        raise TerraformError(f"{template.parent / 'main.tf'} does not call templatefile() on {template.name}")
    return dict(re.findall(r"(\w+)\s*=\s*module\.env\.(\w+)", call.group(1)))


def render(template: Path, env: dict[str, str], workdir: Path, **values: str) -> str:
    if shutil.which("terraform") is None:
        raise TerraformError("terraform is not installed; install Terraform >= 1.9 (it renders the startup scripts)")
    workdir.mkdir(parents=True, exist_ok=True)
    bindings = env_module_bindings(template)
    variables = {name: "" for name in template_variables(template) - set(bindings)} | values
    from_module = ", ".join(f"{name} = module.env.{output}" for name, output in bindings.items())
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
  value     = templatefile("{template}", merge(var.vars, {{ {from_module} }}))
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
