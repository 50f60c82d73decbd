"""A fresh directory per job: the repository cloned through the server's git proxy, plus the job's files.

Layout: `<root>/<prefix>-<job id>-<random>/` holds `owner.json` (who made it, for the janitor) and `workspace/`,
which steps see as /data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from executor_agent.job import JobFailure
from executor_agent.protocol.jobs import FileEntry, JobSpec
from executor_agent.protocol.wire import EXECUTOR_NAME_HEADER, JOB_ID_HEADER, git_path

OWNER_FILE = "owner.json"
SPARSE_KEY = "setup.git.sparse-checkout"
SPARSE_FILE = ".git/info/sparse-checkout"


@dataclass
class Workspace:
    job_dir: Path
    path: Path  # mounted at /data

    def remove(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


def workspace_root(configured: str) -> Path:
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / "executor-workspaces"
    root.mkdir(parents=True, exist_ok=True)
    return root


def create(root: Path, prefix: str, job_id: int, executor_name: str) -> Workspace:
    job_dir = root / f"{prefix}-{job_id}-{secrets.token_hex(4)}"
    (job_dir / "workspace").mkdir(parents=True)
    owner = {"executorName": executor_name, "pid": os.getpid(), "hostname": socket.gethostname(), "jobId": job_id}
    (job_dir / OWNER_FILE).write_text(json.dumps(owner))
    return Workspace(job_dir, job_dir / "workspace")


def git_auth_env(job: JobSpec, executor_name: str, authorization: str = "") -> dict[str, str]:
    """The job token and identity headers as git configuration in the environment (GIT_CONFIG_COUNT, git >= 2.31).

    Never on git's command line: any process on the host reads /proc/*/cmdline, while a process's environment is
    readable only by its own user. `authorization` replaces the job token's header (`executor test-vm` clones with
    the operator's own secret, which must stay off the command line just the same).
    """
    headers = [
        f"Authorization: {authorization or 'Bearer ' + job.token}",
        f"{JOB_ID_HEADER}: {job.id}",
        f"{EXECUTOR_NAME_HEADER}: {executor_name}",
    ]
    env = {"GIT_CONFIG_COUNT": str(len(headers))}
    for i, header in enumerate(headers):
        env[f"GIT_CONFIG_KEY_{i}"] = "http.extraHeader"
        env[f"GIT_CONFIG_VALUE_{i}"] = header
    return env


def clone_commands(job: JobSpec, frontend_url: str, executor_name: str) -> list[tuple[str, list[str]]]:
    """The setup.git.* commands, as the seeds' executor runs them: init, one-commit fetch, sparse config, checkout.

    No secret in the URL or the arguments: the headers go in the environment (git_auth_env).
    """
    url = frontend_url + git_path(quote(job.repositoryName, safe="/"))
    auth = ["-c", "protocol.version=2"]
    fetch = ["git", *auth, "fetch", "--progress", "--no-recurse-submodules", "--force"]
    fetch += ["--tags"] if job.fetchTags else ["--no-tags"]
    if job.shallowClone:
        fetch.append("--depth=1")
    commands = [
        ("setup.git.init", ["git", "init", "--quiet"]),
        ("setup.git.add-remote", ["git", "remote", "add", "origin", url]),
        ("setup.git.disable-gc", ["git", "config", "--local", "gc.auto", "0"]),
        ("setup.git.fetch", [*fetch, "origin", job.commit]),
    ]
    if job.sparseCheckout:
        # Patterns go straight into .git/info/sparse-checkout (non-cone), which every git >= 2.26 understands.
        commands.append(("setup.git.sparse-checkout-config", ["git", "config", "--local", "core.sparseCheckout", "1"]))
        commands.append((SPARSE_KEY, ["write", SPARSE_FILE, *job.sparseCheckout]))
    checkout = ["git", "-c", "advice.detachedHead=false", "checkout", "--progress", "--force", job.commit]
    commands.append(("setup.git.checkout", checkout))
    return commands


def write_sparse_patterns(checkout: Path, patterns: list[str]) -> None:
    path = checkout / SPARSE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{p}\n" for p in patterns))


def checkout_dir(workspace: Workspace, job: JobSpec) -> Path:
    """Where the repository goes: `repositoryDirectory` inside the workspace (validated like a file path)."""
    if not job.repositoryDirectory:
        return workspace.path
    target = resolve_inside(workspace.path, job.repositoryDirectory, "repositoryDirectory")
    target.mkdir(parents=True, exist_ok=True)
    return target


def resolve_inside(base: Path, relative: str, what: str, *, allow_base: bool = True) -> Path:
    """base/relative, refusing anything that would land outside base (`..`, absolute, through a symlink).

    `.` and `./` name base itself: fine for a step's `dir`, refused for a file (allow_base=False).
    """
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("\\") or not relative.strip():
        raise JobFailure(f"{what} {relative!r}: must be a relative path inside the workspace", retryable=False)
    if "\0" in relative:
        raise JobFailure(f"{what} {relative!r}: contains a NUL byte", retryable=False)
    if any(part == ".." for part in pure.parts):
        raise JobFailure(f"{what} {relative!r}: '..' would leave the workspace", retryable=False)
    if not pure.parts:  # "." or "./": the workspace itself
        if allow_base:
            return base
        raise JobFailure(f"{what} {relative!r}: names the workspace directory itself, not a file", retryable=False)
    target = base.joinpath(*pure.parts)
    real_base = base.resolve()
    # Existing parents are resolved, so a symlink placed by the repository cannot redirect the write.
    parent = target.parent.resolve()
    if parent != real_base and real_base not in parent.parents:
        raise JobFailure(f"{what} {relative!r}: resolves outside the workspace (through a symlink)", retryable=False)
    if target.is_symlink():
        raise JobFailure(f"{what} {relative!r}: is a symlink; refusing to write through it", retryable=False)
    return target


def write_files(base: Path, files: dict[str, FileEntry]) -> list[str]:
    """Check every path and decode every content first, so a bad entry means nothing is written at all."""
    planned: list[tuple[Path, bytes, FileEntry]] = []
    for name, entry in files.items():
        target = resolve_inside(base, name, "files", allow_base=False)
        try:
            content = base64.b64decode(entry.content, validate=True)
        except (binascii.Error, ValueError):
            raise JobFailure(f"files {name!r}: content is not valid base64", retryable=False) from None
        planned.append((target, content, entry))
    for target, content, entry in planned:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:  # a name too long, or a file where another entry needs a directory: not retryable
            name = str(target.relative_to(base))
            raise JobFailure(f"files {name!r}: cannot be written: {exc.strerror}", retryable=False) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        if entry.modifiedAt is not None:
            stamp = entry.modifiedAt.timestamp()
            os.utime(target, (stamp, stamp))
    return [str(p.relative_to(base)) for p, _, _ in planned]
