"""Configuration: Go-style durations and sizes, seed defaults, and one clear line per bad variable (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from executor_agent.config import ConfigError, RuntimeName, load_settings
from executor_agent.protocol.durations import format_duration, format_size, parse_duration, parse_size

REQUIRED = {
    "EXECUTOR_FRONTEND_URL": "http://127.0.0.1:1",
    "EXECUTOR_FRONTEND_PASSWORD": "secret-secret-secret-1",
    "EXECUTOR_QUEUE_NAME": "batches",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("1h30m", 5400), ("1s", 1), ("500ms", 0.5), ("1.5h", 5400), ("0", 0), ("2h45m30s", 9930)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"), [(1800, "30m0s"), (5400, "1h30m0s"), (1, "1s"), (0.5, "500ms"), (0, "0s")]
)
def test_format_duration_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", ["30", "1h3", "m", "", "30x", "1.2.3s"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("12G", 12 * 1024**3),
        ("12GB", 12 * 1024**3),
        ("12GiB", 12 * 1024**3),
        ("512M", 512 * 1024**2),
        ("0", 0),
        ("100", 100),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


def test_seed_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.use_firecracker is True and s.runtime == RuntimeName.FIRECRACKER
    assert s.maximum_num_jobs == 1
    assert s.maximum_runtime_per_job == 1800
    assert s.job_memory == 12 * 1024**3
    assert s.job_num_cpus == 4
    assert s.firecracker_disk_space == 20 * 1024**3
    assert s.firecracker_bandwidth_egress == s.firecracker_bandwidth_ingress == 524288000
    assert s.queue_poll_interval == 1 and s.cleanup_task_interval == 60
    assert s.vm_prefix == "executor" and s.src_log_level == "warn"
    assert s.max_active_time == 0 and s.num_total_jobs == 0 and s.keep_workspaces is False
    assert s.metrics_addr == "0.0.0.0:9999"
    monkeypatch.setenv("EXECUTOR_USE_FIRECRACKER", "false")
    assert load_settings().runtime == RuntimeName.DOCKER


def test_queue_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("EXECUTOR_QUEUE_NAMES", "codeintel,batches")
    with pytest.raises(ConfigError, match="exactly one of EXECUTOR_QUEUE_NAME and EXECUTOR_QUEUE_NAMES"):
        load_settings()
    monkeypatch.delenv("EXECUTOR_QUEUE_NAME")
    assert load_settings().queue_names == ["batches", "codeintel"]


def test_shell_runtime_needs_trusted_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("EXECUTOR_RUNTIME", "shell")
    with pytest.raises(ConfigError, match="EXECUTOR_TRUSTED_QUEUES: the shell runtime runs jobs unisolated"):
        load_settings()
    monkeypatch.setenv("EXECUTOR_TRUSTED_QUEUES", "batches")
    assert load_settings().runtime == RuntimeName.SHELL


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "executor_agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("EXECUTOR_JOB_MEMORY", "12X", "EXECUTOR_JOB_MEMORY='12X': '12X' is not a size; use e.g. 12G"),
        ("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "1h3", "EXECUTOR_MAXIMUM_RUNTIME_PER_JOB='1h3': '1h3' is not a duration"),
        ("EXECUTOR_MAXIMUM_NUM_JOBS", "0", "EXECUTOR_MAXIMUM_NUM_JOBS='0': Input should be greater than or equal to 1"),
        ("EXECUTOR_FRONTEND_URL", "fleet:3080", "EXECUTOR_FRONTEND_URL='fleet:3080': must be an http(s) URL"),
        ("SRC_LOG_LEVEL", "debug", "SRC_LOG_LEVEL='debug': must be one of dbug, info, warn, error, crit"),
        ("EXECUTOR_KEEP_WORKSPACES", "maybe", "EXECUTOR_KEEP_WORKSPACES='maybe': Input should be a valid boolean"),
        ("EXECUTOR_NUM_TOTAL_JOBS", "lots", "(e.g. EXECUTOR_NUM_TOTAL_JOBS=0)"),
    ],
)
def test_bad_value_stops_with_one_line_and_exit_2(var: str, value: str, expected: str) -> None:
    env = {"PATH": "/usr/bin:/bin", **REQUIRED, "EXECUTOR_USE_FIRECRACKER": "false", var: value}
    result = run_cli(env, "run")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert len([line for line in result.stderr.splitlines() if var in line]) == 1


def test_missing_required_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "EXECUTOR_QUEUE_NAME": "batches"}
    result = run_cli(env, "validate")
    assert result.returncode == 2
    assert "EXECUTOR_FRONTEND_URL is not set; it is required (e.g. EXECUTOR_FRONTEND_URL=http://" in result.stderr
    assert "EXECUTOR_FRONTEND_PASSWORD is not set" in result.stderr


@pytest.mark.parametrize("command", ["run", "test-vm"])
def test_firecracker_says_plainly_it_is_not_in_this_build(command: str) -> None:
    env = {"PATH": "/usr/bin:/bin", **REQUIRED}  # EXECUTOR_USE_FIRECRACKER defaults to true on Linux
    result = run_cli(env, command)
    # No VM runtime in this build, or no usable KVM here: one line saying why and what to set instead.
    assert result.returncode == 2
    assert result.stderr.startswith("executor: runtime firecracker: ") and result.stderr.count("\n") == 1
    assert "EXECUTOR_USE_FIRECRACKER=false" in result.stderr


def test_help_explains() -> None:
    result = run_cli({"PATH": "/usr/bin:/bin"}, "--help")
    assert result.returncode == 0
    for word in ("validate", "install", "test-vm", "EXECUTOR_FRONTEND_URL"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("EXECUTOR_FRONTEND_PASSWORD", "x" * 19, "at least 20 characters"),
        ("EXECUTOR_HEARTBEAT_INTERVAL", "0s", "more than 0"),
        ("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "0", "more than 0"),
        ("EXECUTOR_QUEUE_LONG_POLL", "1h", "at most 30s"),
        ("EXECUTOR_DOCKER_REGISTRY_MIRROR_URL", "::bad", "http(s) URL"),
        ("EXECUTOR_QUEUE_NAME", "Bad Queue!", "not a queue name"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(name: str, value: str, why: str) -> None:
    env = {"PATH": "/usr/bin:/bin", **REQUIRED, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "executor_agent", "validate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"{name}=")]
    assert len(problems) == 1 and why in problems[0], result.stderr
    assert "Traceback" not in result.stderr


def test_misspelt_variables_are_warned_about(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    for k, v in {**REQUIRED, "EXECUTOR_MAXIMUM_NUM_JOB": "4", "EXECUTOR_METRIC_AWS_REGION": "x"}.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()  # a warning, not a refusal
    assert settings.maximum_num_jobs == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # the metrics publisher's EXECUTOR_METRIC_* names are known elsewhere
    assert "EXECUTOR_MAXIMUM_NUM_JOB " in lines[0] and "did you mean EXECUTOR_MAXIMUM_NUM_JOBS?" in lines[0]
