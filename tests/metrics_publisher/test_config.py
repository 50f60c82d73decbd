"""Settings: every publisher variable (docs/metrics-publisher.md), Go durations, allocations, one-line errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from metrics_publisher.config import PublisherSettings, load_settings
from metrics_publisher.durations import format_duration, parse_duration
from metrics_publisher.series import Sample, queue_totals, samples_for

BASE = {"FLEET_API_TOKEN": "t"}
CONTRACT_VARS = {
    "EXECUTOR_METRIC_ENVIRONMENT_LABEL",
    "EXECUTOR_METRIC_AWS_NAMESPACE",
    "EXECUTOR_METRIC_AWS_REGION",
    "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID",
    "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY",
    "EXECUTOR_METRIC_AWS_SESSION_TOKEN",
    "EXECUTOR_METRIC_GCP_PROJECT_ID",
    "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE",
    "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT",
    "EXECUTOR_ALLOCATIONS",
    "EXECUTOR_METRIC_PUBLISH_INTERVAL",
    "FLEET_URL",
    "FLEET_API_TOKEN",
    "EXECUTOR_METRIC_GCP_API_ENDPOINT",
}


def test_every_contract_variable_is_a_described_field() -> None:
    fields = {f.alias: f for f in PublisherSettings.model_fields.values()}
    assert fields.keys() >= CONTRACT_VARS
    assert all(f.description for f in fields.values())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("1.5s", 1.5), ("2m", 120), ("0", 0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "5x", "s", "1m 30s", "-5s", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for seconds in (0.25, 5, 90, 3600, 5400):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_full_configuration() -> None:
    settings = load_settings(
        {
            **BASE,
            "EXECUTOR_METRIC_ENVIRONMENT_LABEL": "prod",
            "EXECUTOR_METRIC_AWS_REGION": "eu-west-1",
            "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID": "AKID",
            "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY": "s3cret",
            "EXECUTOR_METRIC_PUBLISH_INTERVAL": "1m30s",
            "EXECUTOR_ALLOCATIONS": '{"batches": {"aws": 0.5, "gcp": 0.5}, "batches_codeintel": {"aws": 1}}',
            "EXECUTOR_METRIC_QUEUE_GROUPS": "codeintel,batches; other",
            "FLEET_URL": "http://fleet.internal:3080/",
            "UNRELATED": "ignored",
        }
    )
    assert settings.aws_enabled and not settings.gcp_enabled
    assert settings.resolved_aws_namespace == "sourcegraph-executor"
    assert settings.publish_interval == 90
    assert settings.allocations["batches"] == {"aws": 0.5, "gcp": 0.5}
    assert settings.queue_groups == (("batches", "codeintel"), ("other",))
    assert settings.fleet_url == "http://fleet.internal:3080"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("env", "variable", "hint"),
    [
        ({}, "FLEET_API_TOKEN", "not set"),
        ({"EXECUTOR_METRIC_AWS_NAMESPACE": "sourcegraph-executor"}, "EXECUTOR_METRIC_AWS_REGION", "namespace"),
        ({"EXECUTOR_METRIC_AWS_REGION": "us-east-1"}, "EXECUTOR_METRIC_ENVIRONMENT_LABEL", "executor_metrics"),
        ({"EXECUTOR_METRIC_AWS_ACCESS_KEY_ID": "AKID"}, "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY", "together"),
        ({"EXECUTOR_METRIC_AWS_SESSION_TOKEN": "tok"}, "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID", "session token"),
        ({"EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE": "/no/such/key.json"}, "_FILE", "cannot read"),
        ({"EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": "%%%"}, "_FILE_CONTENT", "base64"),
        ({"EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": "{nope"}, "_FILE_CONTENT", "JSON"),
        ({"EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": '{"a": 1}'}, "_FILE_CONTENT", "`type`"),
        ({"EXECUTOR_ALLOCATIONS": "batches=0.5"}, "EXECUTOR_ALLOCATIONS", "not JSON"),
        ({"EXECUTOR_ALLOCATIONS": '{"batches": {"aws": 0.7, "gcp": 0.4}}'}, "EXECUTOR_ALLOCATIONS", "sum to 1.1"),
        ({"EXECUTOR_ALLOCATIONS": '{"batches": {"azure": 1}}'}, "EXECUTOR_ALLOCATIONS", "unknown cloud 'azure'"),
        ({"EXECUTOR_ALLOCATIONS": '{"batches": {"aws": -1}}'}, "EXECUTOR_ALLOCATIONS", "from 0 to 1"),
        ({"EXECUTOR_ALLOCATIONS": '{"batches": 0.5}'}, "EXECUTOR_ALLOCATIONS", "expected an object"),
        ({"EXECUTOR_METRIC_PUBLISH_INTERVAL": "5"}, "EXECUTOR_METRIC_PUBLISH_INTERVAL", "5s"),
        ({"EXECUTOR_METRIC_PUBLISH_INTERVAL": "0s"}, "EXECUTOR_METRIC_PUBLISH_INTERVAL", "more than zero"),
        ({"EXECUTOR_METRIC_QUEUE_GROUPS": "batches,,codeintel"}, "EXECUTOR_METRIC_QUEUE_GROUPS", "empty"),
        ({"FLEET_URL": "fleet:3080"}, "FLEET_URL", "http"),
        ({"EXECUTOR_METRIC_PROMETHEUS_ADDR": "9101"}, "EXECUTOR_METRIC_PROMETHEUS_ADDR", "HOST:PORT"),
        ({"SRC_LOG_LEVEL": "debug"}, "SRC_LOG_LEVEL", "dbug"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(env: dict[str, str], variable: str, hint: str) -> None:
    from metrics_publisher.config import ConfigError

    full = env if variable == "FLEET_API_TOKEN" else {**BASE, **env}
    with pytest.raises(ConfigError) as caught:
        load_settings(full)
    message = str(caught.value)
    assert "\n" not in message
    assert message.split(":")[0].endswith(variable), message
    assert hint in message, message


def test_secrets_never_appear_in_errors() -> None:
    from metrics_publisher.config import ConfigError

    secret = base64.b64encode(json.dumps({"private_key": "TOPSECRET"}).encode()).decode()
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT": secret})
    assert "TOPSECRET" not in str(caught.value) and secret not in str(caught.value)


def test_base64_credentials_file_as_terraform_outputs_it(tmp_path: Path) -> None:
    info = {"type": "service_account", "client_email": "w@p.iam.gserviceaccount.com"}
    path = _write(tmp_path / "key", base64.b64encode(json.dumps(info).encode()).decode() + "\n")
    settings = load_settings(
        {
            **BASE,
            "EXECUTOR_METRIC_GCP_PROJECT_ID": "p",
            "EXECUTOR_METRIC_ENVIRONMENT_LABEL": "prod",
            "EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE": path,
        }
    )
    assert settings.google_credentials_info() == info


def test_totals_groups_and_allocation_rounding() -> None:
    totals = queue_totals({"batches": 3, "codeintel": 4}, (("batches", "codeintel"), ("batches", "missing")))
    assert totals == {"batches": 3, "batches_codeintel": 7, "batches_missing": 3, "codeintel": 4}
    allocations = {"batches": {"aws": 0.5, "gcp": 0.5}, "codeintel": {"gcp": 1.0}}
    assert samples_for(totals, allocations, "aws") == [
        Sample("batches", 2),
        Sample("batches_codeintel", 7),
        Sample("batches_missing", 3),
        Sample("codeintel", 0),
    ]
    assert samples_for({"q": 10}, {"q": {"aws": 0.3}}, "aws") == [Sample("q", 3)]
    assert samples_for({"q": 0}, {"q": {"aws": 0.3}}, "aws") == [Sample("q", 0)]
    # Prometheus and --dry-run without a cloud publish whole sizes.
    assert samples_for({"batches": 3}, allocations, None) == [Sample("batches", 3)]
