"""Reads Terraform modules with python-hcl2, for checks that need no provider (and so also cover Google)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

try:
    import hcl2

    HAVE_HCL2 = True
except ImportError:  # pragma: no cover - the failure message is the point
    HAVE_HCL2 = False


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of names and string literals; `${...}` marks an expression."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class Variable:
    name: str
    type: str | None
    description: str | None
    default: Any
    required: bool
    sensitive: bool
    validations: list[dict[str, Any]]


@dataclass
class Output:
    name: str
    description: str | None
    sensitive: bool


@cache
def load(path: Path) -> dict[str, Any]:
    """The parsed file; cached because the lark-based parser takes a while and many tests read the same files."""
    if not HAVE_HCL2:
        pytest.fail("python-hcl2 is missing: install it into the venv (.venv/bin/pip install python-hcl2)")
    with path.open() as handle:
        return dict(hcl2.load(handle))


def blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every `kind` block (variable, output, module, resource, ...) of the module's .tf files, by its first label."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in load(path).get(kind, []):
            for label, body in block.items():
                found[str(unquote(label))] = body
    return found


def variables(directory: Path) -> dict[str, Variable]:
    result = {}
    for name, body in blocks(directory, "variable").items():
        result[name] = Variable(
            name=name,
            type=body.get("type"),
            description=unquote(body.get("description")),
            default=unquote(body.get("default")),
            required="default" not in body,
            sensitive=body.get("sensitive") is True,
            validations=body.get("validation", []),
        )
    return result


def outputs(directory: Path) -> dict[str, Output]:
    return {
        name: Output(name, unquote(body.get("description")), body.get("sensitive") is True)
        for name, body in blocks(directory, "output").items()
    }
