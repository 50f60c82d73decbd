"""The image scripts without a container: shellcheck, bad arguments, and the decision of the stop hook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "images"
STOP_HOOK = IMAGES / "executor" / "files" / "executor-stop-hook"


def shell_scripts() -> list[Path]:
    found = []
    for path in sorted(IMAGES.rglob("*")):
        if path.is_file() and (path.suffix == ".sh" or path.read_bytes().startswith(b"#!/usr/bin/env bash")):
            found.append(path)
    return found


def test_there_are_scripts_to_check() -> None:
    names = {p.name for p in shell_scripts()}
    assert {"provision-executor.sh", "provision-mirror.sh", "common.sh", "executor-stop-hook"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(IMAGES)))
def test_shellcheck(script: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed; install it with `apt-get install -y shellcheck`")
    done = subprocess.run(
        ["shellcheck", "--external-sources", "--shell=bash", str(script)],
        cwd=script.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        (
            "executor/provision-executor.sh",
            ["--wheelhouse", "/nonexistent/wheels"],
            "--wheelhouse /nonexistent/wheels",
        ),
        (
            "executor/provision-executor.sh",
            ["/nonexistent/pkg.whl"],
            "SOURCE=/nonexistent/pkg.whl does not exist",
        ),
        ("executor/provision-executor.sh", ["--frobnicate"], "unknown option --frobnicate"),
        ("executor/provision-executor.sh", ["--deb-dir"], "--deb-dir needs a directory"),
        (
            "mirror/provision-mirror.sh",
            ["--upstream-url", "ftp://x"],
            "--upstream-url ftp://x is not an http(s) URL",
        ),
        (
            "mirror/provision-mirror.sh",
            ["--storage", "relative/dir"],
            "--storage relative/dir is not an absolute",
        ),
    ],
)
def test_bad_arguments_exit_2_before_touching_the_machine(script: str, args: list[str], message: str) -> None:
    done = subprocess.run(["bash", str(IMAGES / script), *args], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.splitlines()[0]


def test_help_explains_the_options() -> None:
    for script, option in (
        ("executor/provision-executor.sh", "--wheelhouse"),
        ("mirror/provision-mirror.sh", "--upstream-url"),
    ):
        done = subprocess.run(["bash", str(IMAGES / script), "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and option in done.stdout


def _hook(tmp_path: Path, phase: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Powering off is replaced by a command that leaves a file behind: that is the setting the unit drop-in of
    # `provision-executor.sh --no-poweroff` uses too (EXECUTOR_POWEROFF_COMMAND).
    full = {
        "PATH": os.environ["PATH"],
        "EXECUTOR_STOP_MARKER": str(tmp_path / "run" / "stop-requested"),
        "EXECUTOR_POWEROFF_COMMAND": f"touch {tmp_path / 'powered-off'}",
        **env,
    }
    return subprocess.run([str(STOP_HOOK), phase], env=full, capture_output=True, text=True, check=True)


def _powered_off(tmp_path: Path) -> bool:
    return (tmp_path / "powered-off").exists()


EXITED_0 = {"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}


def test_exit_0_by_itself_powers_off(tmp_path: Path) -> None:
    _hook(tmp_path, "reset")
    # systemd runs ExecStop= also after the main process ended by itself, with $MAINPID unset.
    _hook(tmp_path, "stop", **EXITED_0)
    out = _hook(tmp_path, "post", **EXITED_0).stdout
    assert _powered_off(tmp_path), out
    assert "powering the machine off" in out


def test_requested_stop_keeps_the_machine_up(tmp_path: Path) -> None:
    _hook(tmp_path, "reset")
    _hook(tmp_path, "stop", MAINPID="4242")
    out = _hook(tmp_path, "post", **EXITED_0).stdout
    assert not _powered_off(tmp_path)
    assert "stopped on request" in out
    # The request is forgotten: a later retirement powers off again.
    _hook(tmp_path, "reset")
    _hook(tmp_path, "post", **EXITED_0)
    assert _powered_off(tmp_path)


@pytest.mark.parametrize(
    "ending",
    [
        {"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "1"},
        {"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "2"},
        {"SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"},
        {"SERVICE_RESULT": "timeout", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"},
        {},
    ],
    ids=["exit-1", "config-error", "killed", "timeout", "no-variables"],
)
def test_any_other_ending_keeps_the_machine_up(tmp_path: Path, ending: dict[str, str]) -> None:
    _hook(tmp_path, "reset")
    out = _hook(tmp_path, "post", **ending).stdout
    assert not _powered_off(tmp_path)
    assert "machine stays up" in out


def test_hook_refuses_unknown_phase() -> None:
    done = subprocess.run([str(STOP_HOOK), "bogus"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr


PACKER_TEMPLATES = sorted(IMAGES.glob("*/*.pkr.hcl"))


def test_there_are_two_packer_templates() -> None:
    assert [p.name for p in PACKER_TEMPLATES] == ["executor.pkr.hcl", "mirror.pkr.hcl"]


@pytest.mark.parametrize("template", PACKER_TEMPLATES, ids=lambda p: p.name)
def test_packer_template_is_well_formed_hcl(template: Path) -> None:
    # Packer is not installable here (no package registry carries it), so `packer validate` cannot run. The
    # template is HCL, which Terraform's formatter parses: a syntax error fails it, and the file must be formatted.
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not installed; it is needed to parse the Packer templates (HCL)")
    source = template.read_text()
    done = subprocess.run(["terraform", "fmt", "-no-color", "-"], input=source, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == source, "template not formatted; run `terraform fmt - < file` and keep its output"


@pytest.mark.parametrize("template", PACKER_TEMPLATES, ids=lambda p: p.name)
def test_packer_template_builds_both_clouds_with_its_script(template: Path) -> None:
    source = template.read_text()
    kind = template.parent.name
    assert f'source "amazon-ebs" "{kind}"' in source and f'source "googlecompute" "{kind}"' in source
    assert f"/images/{kind}/provision-{kind}.sh" in source
    assert (IMAGES / kind / f"provision-{kind}.sh").exists()
    help_text = subprocess.run(
        ["bash", str(IMAGES / kind / f"provision-{kind}.sh"), "--help"], capture_output=True, text=True
    ).stdout
    # The script's command lines, and the flags the template assembles for them from paths on the build machine.
    script_lines = [line for line in source.splitlines() if "provision-" in line or "${local.work}" in line]
    options = set(re.findall(r"\"(--[a-z-]+)| (--[a-z-]+)", "\n".join(script_lines)))
    for option in {a or b for a, b in options}:
        assert option in help_text, f"{template.name} passes {option}, which provision-{kind}.sh does not know"
    declared = set(re.findall(r'^variable "(\w+)"', source, flags=re.M))
    used = set(re.findall(r"\bvar\.(\w+)", source))
    assert used <= declared, f"undeclared variables: {used - declared}"
    assert declared <= used, f"unused variables: {declared - used}"
