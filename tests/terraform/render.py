"""Renders the startup-script templates with the real `terraform` (no provider needed) for the bash tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.terraform.harness import Terraform

# Exercises every character a shell or systemd could misread: quotes of both kinds, `$`, backticks, backslashes,
# runs of spaces, a leading dash and `#`.
TRICKY_PASSWORD = "-it's a \"$ecret\" with `id` $(whoami) ${HOME} \\n  spaces # and 'quotes'"


def _hcl(value: Any) -> str:
    # JSON literals are HCL expressions once template sequences are escaped (`${` and `%{` start interpolation).
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def render(tf: Terraform, name: str, outputs: dict[str, str], modules: str = "") -> dict[str, str]:
    """Applies a throwaway root module whose outputs are the given HCL expressions; returns their values."""
    directory = tf.root / "render" / name
    directory.mkdir(parents=True)
    root = tf.root.as_posix()
    body = [f'locals {{\n  tree = "{root}"\n}}', modules]
    body += [f'output "{key}" {{\n  value     = {expr}\n  sensitive = true\n}}' for key, expr in outputs.items()]
    (directory / "main.tf").write_text("\n\n".join(body) + "\n")
    tf.init(str(directory.relative_to(tf.root)))
    tf.check(directory, "apply", "-auto-approve", "-input=false")
    return {k: str(v) for k, v in tf.output_json(directory).items()}


def env_module(name: str, env: dict[str, str], mirror: str = "") -> str:
    # Module sources must be literal: render directories sit two levels below the tree.
    return (
        f'module "{name}" {{\n  source = "../../common/executor-env"\n  env    = {_hcl(env)}\n'
        f"  docker_registry_mirror = {_hcl(mirror)}\n}}\n"
    )


def templatefile(relative: str, variables: dict[str, str]) -> str:
    """`templatefile()` call; values are HCL expressions (use `_hcl` for literals)."""
    items = ", ".join(f"{k} = {v}" for k, v in variables.items())
    return f'templatefile("${{local.tree}}/{relative}", {{ {items} }})'


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path
