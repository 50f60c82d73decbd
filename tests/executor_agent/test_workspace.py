"""Job files: anything that would land outside the workspace fails the job and nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from executor_agent.job import JobFailure
from executor_agent.protocol.jobs import FileEntry, JobSpec
from executor_agent.workspace import clone_commands, git_auth_env, resolve_inside, write_files
from tests.executor_agent.helpers import b64


def test_files_written_with_content_and_mtime(tmp_path: Path) -> None:
    stamp = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    written = write_files(
        tmp_path, {"a.txt": FileEntry(content=b64("A")), "d/e/b.sh": FileEntry(content=b64("B"), modifiedAt=stamp)}
    )
    assert sorted(written) == ["a.txt", "d/e/b.sh"]
    assert (tmp_path / "a.txt").read_text() == "A"
    assert (tmp_path / "d/e/b.sh").stat().st_mtime == stamp.timestamp()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../escape.txt", "'..' would leave the workspace"),
        ("a/../../escape.txt", "'..' would leave the workspace"),
        ("/etc/passwd-fleet", "must be a relative path inside the workspace"),
        ("link/escape.txt", "resolves outside the workspace (through a symlink)"),
        ("filelink", "is a symlink; refusing to write through it"),
    ],
)
def test_escaping_paths_fail_and_write_nothing(tmp_path: Path, name: str, why: str) -> None:
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (workspace / "link").symlink_to(outside)
    (workspace / "filelink").symlink_to(outside / "target")
    files = {"good-first.txt": FileEntry(content=b64("ok")), name: FileEntry(content=b64("evil"))}
    with pytest.raises(JobFailure) as info:
        write_files(workspace, files)
    assert why in str(info.value) and repr(name) in str(info.value)
    assert info.value.retryable is False
    assert not (workspace / "good-first.txt").exists(), "a bad entry must mean nothing is written"
    assert list(outside.iterdir()) == []
    assert not Path("/etc/passwd-fleet").exists()


def test_bad_base64_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(JobFailure, match="not valid base64"):
        write_files(tmp_path, {"a": FileEntry(content=b64("ok")), "b": FileEntry(content="!!!")})
    assert list(tmp_path.iterdir()) == []


def test_step_dir_inside(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "sub/dir", "dir") == tmp_path / "sub" / "dir"


def test_clone_keeps_token_out_of_the_url_and_the_arguments() -> None:
    job = JobSpec(id=7, token="tok-123", repositoryName="github.com/a/b", commit="c0ffee", shallowClone=True)
    commands = dict(clone_commands(job, "http://fleet:3080", "host-1"))
    assert commands["setup.git.add-remote"][-1] == "http://fleet:3080/.executors/git/github.com/a/b"
    fetch = commands["setup.git.fetch"]
    assert "--depth=1" in fetch and fetch[-2:] == ["origin", "c0ffee"]
    assert not any("tok-123" in arg for argv in commands.values() for arg in argv)
    env = git_auth_env(job, "host-1")
    assert env["GIT_CONFIG_COUNT"] == "3"
    assert {env[f"GIT_CONFIG_VALUE_{i}"] for i in range(3)} == {
        "Authorization: Bearer tok-123",
        "X-Sourcegraph-Job-ID: 7",
        "X-Sourcegraph-Executor-Name: host-1",
    }
    assert list(commands) == [
        "setup.git.init",
        "setup.git.add-remote",
        "setup.git.disable-gc",
        "setup.git.fetch",
        "setup.git.checkout",
    ]


@pytest.mark.parametrize("relative", [".", "./"])
def test_step_dir_dot_is_the_workspace(tmp_path: Path, relative: str) -> None:
    # The job example in docs/control-plane.md uses "dir": "."; it once failed as "resolves outside the workspace".
    assert resolve_inside(tmp_path, relative, "dir") == tmp_path


@pytest.mark.parametrize("name", [".", "./"])
def test_file_named_dot_gets_a_true_message(tmp_path: Path, name: str) -> None:
    with pytest.raises(JobFailure, match="names the workspace directory itself, not a file") as info:
        write_files(tmp_path, {name: FileEntry(content=b64("x"))})
    assert info.value.retryable is False


def test_file_under_a_file_is_not_retried(tmp_path: Path) -> None:
    files = {"same": FileEntry(content=b64("a")), "same/child": FileEntry(content=b64("b"))}
    with pytest.raises(JobFailure, match="'same/child': cannot be written: (File exists|Not a directory)") as info:
        write_files(tmp_path, files)
    assert info.value.retryable is False
