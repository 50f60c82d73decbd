"""Draft 002's variable names (EXECUTOR_MAX_NUM_JOBS, EXECUTOR_BACKEND, EXECUTOR_REGISTRATION_TOKEN): each one is
honoured or refused with one line, never ignored. Users of the container image copy them from that draft."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from executor_agent.config import ConfigError, RuntimeName, load_settings

SetEnv = Callable[..., None]
BASE = {"EXECUTOR_FRONTEND_URL": "http://fleet.example.com:3080", "EXECUTOR_QUEUE_NAME": "batches"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    for name in list(os.environ):
        if name.startswith("EXECUTOR_"):
            monkeypatch.delenv(name)

    def set_env(**values: str) -> None:
        for name, value in {**BASE, **values}.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_max_num_jobs_is_maximum_num_jobs(env: SetEnv) -> None:
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_MAX_NUM_JOBS="3")
    assert load_settings().maximum_num_jobs == 3
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_MAX_NUM_JOBS="3", EXECUTOR_MAXIMUM_NUM_JOBS="3")
    assert load_settings().maximum_num_jobs == 3


def test_max_num_jobs_contradicting_maximum_num_jobs_is_refused(env: SetEnv) -> None:
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_MAX_NUM_JOBS="3", EXECUTOR_MAXIMUM_NUM_JOBS="2")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == (
        "EXECUTOR_MAX_NUM_JOBS: EXECUTOR_MAX_NUM_JOBS and EXECUTOR_MAXIMUM_NUM_JOBS are both set, to different "
        "values; set only EXECUTOR_MAXIMUM_NUM_JOBS"
    )


def test_registration_token_is_the_shared_secret(env: SetEnv) -> None:
    env(EXECUTOR_REGISTRATION_TOKEN="tok-123-of-the-seed-variable-tests")
    assert load_settings().frontend_password == "tok-123-of-the-seed-variable-tests"
    env(
        EXECUTOR_REGISTRATION_TOKEN="tok-123-of-the-seed-variable-tests",
        EXECUTOR_FRONTEND_PASSWORD="another-secret-of-20-chars",
    )
    with pytest.raises(ConfigError, match="set only EXECUTOR_FRONTEND_PASSWORD"):
        load_settings()


def test_backend_docker_selects_the_docker_runtime(env: SetEnv) -> None:
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20)
    assert load_settings().runtime == RuntimeName.FIRECRACKER  # the seed default on Linux, for contrast
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_BACKEND="docker")
    assert load_settings().runtime == RuntimeName.DOCKER
    env(EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_BACKEND="docker", EXECUTOR_RUNTIME="shell")
    with pytest.raises(ConfigError, match="contradicts EXECUTOR_RUNTIME=shell"):
        load_settings()


@pytest.mark.parametrize(
    ("backend", "line"),
    [
        (
            "kubernetes",
            "EXECUTOR_BACKEND: kubernetes is not supported; jobs run in Docker on this host: "
            "set EXECUTOR_BACKEND=docker"
            " (or EXECUTOR_RUNTIME=docker, shell or firecracker)",
        ),
        ("nomad", "EXECUTOR_BACKEND: 'nomad' is not a backend; use EXECUTOR_BACKEND=docker"),
    ],
)
def test_other_backends_stop_the_program_with_one_line(backend: str, line: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTOR_")}
    env.update(BASE, EXECUTOR_FRONTEND_PASSWORD="s" * 20, EXECUTOR_BACKEND=backend)
    done = subprocess.run(
        [sys.executable, "-m", "executor_agent", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert line in done.stderr.splitlines(), done.stderr
