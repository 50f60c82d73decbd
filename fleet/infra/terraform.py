"""The one place that runs Terraform (through python-terraform), so that the driver can be swapped.

Output is streamed to the terminal as Terraform prints it and exit codes are returned as they are; failures we can
foresee (no binary, an old version, a plugin directory without the provider) are caught before Terraform runs.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_VERSION = (1, 9)  # the modules declare required_version >= 1.9
BIN_ENV = "FLEET_TERRAFORM_BIN"


class TerraformError(RuntimeError):
    """Terraform cannot be run, or a run failed; the message says what to do."""


def find_binary() -> str:
    explicit = os.environ.get(BIN_ENV)
    path = shutil.which(explicit or "terraform")
    if path is None:
        where = f"{BIN_ENV}={explicit}" if explicit else "PATH"
        raise TerraformError(
            f"terraform not found on {where}: install Terraform {'.'.join(map(str, MIN_VERSION))} or newer "
            f"(https://developer.hashicorp.com/terraform/install) or set {BIN_ENV} to its path"
        )
    return path


def check_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60, check=False)
        version = str(json.loads(out.stdout)["terraform_version"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        raise TerraformError(f"{binary} does not answer `terraform version -json` ({exc}): is it Terraform?") from None
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers < MIN_VERSION:
        raise TerraformError(
            f"Terraform {version} at {binary} is too old: the modules need {'.'.join(map(str, MIN_VERSION))} "
            "or newer; upgrade it"
        )
    return version


def check_plugin_dir(plugin_dir: Path, providers: list[str]) -> None:
    """A plugin directory is the layout `terraform providers mirror` writes: <host>/<namespace>/<name>/..."""
    if not plugin_dir.is_dir():
        raise TerraformError(f"--plugin-dir {plugin_dir} is not a directory")
    for provider in providers:
        namespace, _, name = provider.partition("/")
        if not list(plugin_dir.glob(f"*/{namespace}/{name}/*")):
            raise TerraformError(
                f"--plugin-dir {plugin_dir} has no {provider} provider: fill it with `terraform providers mirror "
                f"{plugin_dir}` on a machine with network access, or leave --plugin-dir out to download"
            )


@dataclass
class PlanSummary:
    add: int
    change: int
    destroy: int
    by_type: dict[str, Counter[str]]

    @property
    def empty(self) -> bool:
        return self.add == self.change == self.destroy == 0

    def lines(self) -> list[str]:
        out = [f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."]
        for action in ("create", "update", "replace", "delete"):
            kinds = self.by_type.get(action)
            if kinds:
                listed = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
                out.append(f"  {action}: {listed}")
        return out


def summarize_plan(doc: dict[str, Any]) -> PlanSummary:
    by_type: dict[str, Counter[str]] = {}
    add = change = destroy = 0
    for rc in doc.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        if actions in (["no-op"], ["read"]):
            continue
        if "create" in actions and "delete" in actions:
            kind = "replace"
            add, destroy = add + 1, destroy + 1
        elif "create" in actions:
            kind, add = "create", add + 1
        elif "delete" in actions:
            kind, destroy = "delete", destroy + 1
        else:
            kind, change = "update", change + 1
        by_type.setdefault(kind, Counter())[rc.get("type", "?")] += 1
    return PlanSummary(add, change, destroy, by_type)


def _can_stream() -> bool:
    try:
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return False
    return True


class TerraformRunner:
    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.binary = find_binary()
        self.version = check_version(self.binary)
        self.workdir = workdir
        self.env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **(env or {})}
        from python_terraform import Terraform  # here, not at the top: `fleet --help` never needs it

        self.tf = Terraform(working_dir=str(workdir), terraform_bin_path=self.binary)

    def _args(self, args: tuple[str, ...]) -> tuple[str, ...]:
        return args if sys.stdout.isatty() else (*args, "-no-color")

    @contextmanager
    def _environment(self) -> Iterator[None]:
        # python-terraform hands the process environment to Terraform; the secret is there only during a run.
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def run(self, command: str, *args: str) -> int:
        """Run with output streamed live; returns Terraform's exit code."""
        with self._environment():
            sys.stdout.flush()
            sys.stderr.flush()
            if _can_stream():
                code, _, _ = self.tf.cmd(command, *self._args(args), capture_output=False)
            else:
                # Not attached to a real terminal or file (e.g. an in-process test runner): relay afterwards.
                code, out, err = self.tf.cmd(command, *self._args(args))
                sys.stdout.write(out or "")
                sys.stderr.write(err or "")
        return int(code)

    def capture(self, command: str, *args: str) -> str:
        with self._environment():
            code, out, err = self.tf.cmd(command, *args, "-no-color")
        if code != 0:
            raise TerraformError(f"terraform {command} failed (exit {code}): {(err or out or '').strip()}")
        return str(out)

    def show_plan(self, plan_file: str) -> PlanSummary:
        return summarize_plan(json.loads(self.capture("show", "-json", plan_file)))

    def outputs(self) -> dict[str, Any]:
        doc = json.loads(self.capture("output", "-json") or "{}")
        return {name: item.get("value") for name, item in doc.items()}
