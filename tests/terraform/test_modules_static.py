"""Checks that need no provider, so they cover Google (whose provider is not installed here) as well as AWS.

`terraform validate` needs each provider's schema; for Google these checks stand in: every module parses, every
variable is typed and described, every `var.`, `local.`, `module.` and resource reference resolves, and module calls
pass exactly the callee's variables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.terraform.harness import REPO_TERRAFORM
from tests.terraform.hcl import blocks, outputs, unquote, variables

CONFIGURATIONS = sorted(
    str(p.parent.relative_to(REPO_TERRAFORM)) for p in REPO_TERRAFORM.rglob("*.tf") if "/tests/" not in str(p)
)
CONFIGURATIONS = sorted(set(CONFIGURATIONS))
MODULES_WITH_README_TABLES = [
    c for c in CONFIGURATIONS if c.count("/") in (0, 2) and "/examples/" not in c and not c.startswith("common")
]
META_ARGUMENTS = {"source", "version", "count", "for_each", "depends_on", "providers"}


def tf_text(directory: Path) -> str:
    # Comments may mention names that are not references.
    text = "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))
    return re.sub(r"(?m)^\s*#.*$", "", text)


def test_both_clouds_have_the_same_layout() -> None:
    aws = {c.removeprefix("aws") for c in CONFIGURATIONS if c.startswith("aws")}
    google = {c.removeprefix("google") for c in CONFIGURATIONS if c.startswith("google")}
    assert aws == google
    assert {"", "/modules/networking", "/modules/docker-mirror", "/modules/executors", "/modules/credentials"} <= aws
    assert {"/examples/single-executor", "/examples/multiple-executors", "/examples/private-single-executor"} <= aws


@pytest.mark.parametrize("relative", CONFIGURATIONS)
def test_every_variable_is_typed_and_described(relative: str) -> None:
    for variable in variables(REPO_TERRAFORM / relative).values():
        assert variable.type, f"{relative}: variable {variable.name} has no type"
        assert variable.description and len(variable.description) > 10, f"{relative}: {variable.name} undescribed"
    for output in outputs(REPO_TERRAFORM / relative).values():
        assert output.description, f"{relative}: output {output.name} has no description"


@pytest.mark.parametrize("relative", CONFIGURATIONS)
def test_every_file_has_versions_and_main(relative: str) -> None:
    directory = REPO_TERRAFORM / relative
    expected = {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    if not relative.startswith("common"):
        assert expected <= {p.name for p in directory.iterdir()}, relative
    assert (directory / "README.md").exists() or "/examples/" in relative, f"{relative} has no README.md"


@pytest.mark.parametrize("relative", MODULES_WITH_README_TABLES)
def test_readme_tables_list_every_input_and_output(relative: str) -> None:
    directory = REPO_TERRAFORM / relative
    readme = (directory / "README.md").read_text()
    rows = set(re.findall(r"(?m)^\| `([a-z0-9_]+)` \|", readme))
    assert rows == set(variables(directory)) | set(outputs(directory)), f"update the tables in {relative}/README.md"


@pytest.mark.parametrize("relative", CONFIGURATIONS)
def test_references_resolve(relative: str) -> None:
    directory = REPO_TERRAFORM / relative
    text = tf_text(directory)
    declared = set(variables(directory))
    used = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    assert used <= declared, f"undeclared variables: {used - declared}"
    assert declared <= used, f"unused variables: {declared - used}"

    local_names = {k for body in blocks_list(directory, "locals") for k in body if not k.startswith("__")}
    used_locals = set(re.findall(r"\blocal\.([a-z0-9_]+)", text))
    assert used_locals <= local_names, f"undefined locals: {used_locals - local_names}"

    resources = {(t, n) for t, names in typed_blocks(directory, "resource").items() for n in names}
    data = {(t, n) for t, names in typed_blocks(directory, "data").items() for n in names}
    for is_data, rtype, name in re.findall(
        r"(data\.)?\b((?:aws|google)_[a-z0-9_]+|terraform_data)\.([a-z0-9_]+)", text
    ):
        assert (rtype, name) in (data if is_data else resources), f"unknown {is_data}{rtype}.{name}"

    calls = blocks(directory, "module")
    for name, body in calls.items():
        callee = (directory / str(unquote(body["source"]))).resolve()
        callee_vars = variables(callee)
        passed = {k for k in body if k not in META_ARGUMENTS and not k.startswith("__")}
        assert passed <= set(callee_vars), f"module {name} passes unknown {passed - set(callee_vars)}"
        required = {v.name for v in callee_vars.values() if v.required}
        assert required <= passed, f"module {name} misses required {required - passed}"
        for used_output in re.findall(rf"\bmodule\.{name}(?:\[[^\]]*\])?\.([a-z0-9_]+)", text):
            assert used_output in outputs(callee), f"module {name} has no output {used_output}"


def blocks_list(directory: Path, kind: str) -> list[dict[str, object]]:
    from tests.terraform.hcl import load

    return [b for p in sorted(directory.glob("*.tf")) for b in load(p).get(kind, [])]


def typed_blocks(directory: Path, kind: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for block in blocks_list(directory, kind):
        for rtype, named in block.items():
            assert isinstance(named, dict)
            found.setdefault(str(unquote(rtype)), set()).update(str(unquote(n)) for n in named)
    return found


def test_google_executors_enable_nested_virtualisation_exactly_for_firecracker() -> None:
    # Google's provider is not installed here, so this reads the template instead of planning it.
    templates = blocks(REPO_TERRAFORM / "google" / "modules" / "executors", "resource")[
        "google_compute_instance_template"
    ]
    features = templates['"this"']["advanced_machine_features"]  # python-hcl2 keeps the label's quotes
    features = features[0] if isinstance(features, list) else features
    assert features["enable_nested_virtualization"] == "${var.use_firecracker}"
