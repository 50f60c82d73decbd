"""The git smart-HTTP proxy: real `git` clones through the server with a job token scoped to one repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.fleet_server import FleetServer


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd or "/tmp"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert not check or done.returncode == 0, f"git {args[-2:]} exited {done.returncode}: {done.stderr}"
    return done


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    path = tmp_path / "origin"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "README").write_text("first\n")
    git("add", ".", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one", cwd=path)
    first = git("rev-parse", "HEAD", cwd=path).stdout.strip()
    (path / "README").write_text("second\n")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "two", cwd=path)
    return path, first, git("rev-parse", "HEAD", cwd=path).stdout.strip()


def claim(server: FleetServer, repo_name: str, commit: str) -> dict[str, object]:
    with server.api() as api, server.executor() as ex:
        r = api.post(
            "/api/v1/jobs",
            json={
                "queue": "batches",
                "repositoryName": repo_name,
                "commit": commit,
                "dockerSteps": [{"image": "busybox", "commands": ["true"]}],
            },
        )
        assert r.status_code == 201, r.text
        job = ex.post("/.executors/queue/batches/dequeue", json={"executorName": "e"}).json()
    return job  # type: ignore[no-any-return]


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_fetch_pinned_commit_with_job_token(
    fleet_server: FleetServer, repo: tuple[Path, str, str], tmp_path: Path, protocol: str
) -> None:
    origin, first, _ = repo
    with fleet_server.api() as api:
        assert (
            api.post("/api/v1/repositories", json={"name": "github.com/acme/app", "url": str(origin)}).status_code
            == 201
        )
        assert (
            api.post("/api/v1/repositories", json={"name": "github.com/acme/other", "url": str(origin)}).status_code
            == 201
        )
    job = claim(fleet_server, "github.com/acme/app", first)
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", cwd=work)
    auth = [
        "-c",
        f"http.extraHeader=Authorization: Bearer {job['token']}",
        "-c",
        f"http.extraHeader=X-Sourcegraph-Job-ID: {job['id']}",
        "-c",
        f"protocol.version={protocol}",
    ]
    url = f"{fleet_server.url}/.executors/git/github.com/acme/app"
    # The first commit is not a branch tip: fetching it by SHA needs allowAnySHA1InWant on the server side.
    git(*auth, "fetch", "-q", "--depth=1", url, first, cwd=work)
    git("checkout", "-q", first, cwd=work)
    assert (work / "README").read_text() == "first\n"
    # The same token cannot read another repository.
    r = git(*auth, "ls-remote", f"{fleet_server.url}/.executors/git/github.com/acme/other", cwd=work, check=False)
    assert r.returncode != 0 and "403" in r.stderr
    # Nor can anyone without a token; pushes are not served at all.
    r = httpx.get(f"{url}/info/refs", params={"service": "git-upload-pack"})
    assert r.status_code == 401
    r = httpx.get(
        f"{url}/info/refs", params={"service": "git-receive-pack"}, headers={"Authorization": f"Bearer {job['token']}"}
    )
    assert r.status_code == 403
    # Once the job ends its token no longer clones.
    with fleet_server.executor() as ex:
        ex.post("/.executors/queue/batches/markComplete", json={"executorName": "e", "jobId": job["id"]})
    r = git(*auth, "ls-remote", url, cwd=work, check=False)
    assert r.returncode != 0


def test_shared_secret_may_clone_and_unknown_repo_is_404(
    fleet_server: FleetServer, repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    origin, _, head = repo
    with fleet_server.api() as api:
        api.post("/api/v1/repositories", json={"name": "acme/app", "url": str(origin)})
        r = api.post("/api/v1/repositories", json={"name": "../evil", "url": str(origin)})
        assert r.status_code == 422
        r = api.post("/api/v1/repositories", json={"name": "acme/x", "url": "relative/path"})
        assert r.status_code == 422 and "absolute path" in r.json()["error"]
    auth = ["-c", f"http.extraHeader=Authorization: token-executor {fleet_server.executor_token}"]
    r = git(*auth, "ls-remote", f"{fleet_server.url}/.executors/git/acme/app", cwd=tmp_path)
    assert head in r.stdout
    r = git(*auth, "ls-remote", f"{fleet_server.url}/.executors/git/acme/missing", cwd=tmp_path, check=False)
    assert r.returncode != 0 and "not found" in r.stderr
