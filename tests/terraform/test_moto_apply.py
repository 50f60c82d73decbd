"""`examples/single-executor` applied for real by terraform and the AWS provider against a moto server on loopback.

Moto stands in for AWS because nothing else can answer the AWS APIs here; the provider, terraform and boto3 are the
real ones, pointed at it with AWS_ENDPOINT_URL. The endpoint and dummy credentials live only in the provider
override file `moto_fleet.py` writes, never in the modules. The apply itself runs in the background (`moto_fleet`).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.moto_fleet import MotoFleet, client
from tests.terraform.render import TRICKY_PASSWORD

# What moto reads back differently from what it was given, each entry pinned with plain boto3 there.
from tests.terraform.test_moto_readback import MOTO_READBACK_GAPS

pytestmark = [pytest.mark.terraform, pytest.mark.slow]


@pytest.fixture(scope="module")
def applied(moto_fleet: MotoFleet) -> Any:
    outputs = moto_fleet.wait()
    return moto_fleet.tf, moto_fleet.directory, moto_fleet.env, outputs


def test_autoscaling_group_scales_from_zero_on_the_queue_metric(applied: Any, moto_endpoint: str) -> None:
    _, _, _, outputs = applied
    autoscaling = client("autoscaling", moto_endpoint)
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["autoscaling_group_name"]])[
        "AutoScalingGroups"
    ]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 5, 0)
    (policy,) = autoscaling.describe_policies(AutoScalingGroupName=group["AutoScalingGroupName"])["ScalingPolicies"]
    assert policy["AdjustmentType"] == "ExactCapacity"
    steps = sorted(policy["StepAdjustments"], key=lambda s: s["MetricIntervalLowerBound"])
    assert [s["ScalingAdjustment"] for s in steps] == [0, 1, 2, 3, 4, 5]
    assert "MetricIntervalUpperBound" not in steps[-1]
    (hook,) = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group["AutoScalingGroupName"])["LifecycleHooks"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["DefaultResult"] == "CONTINUE"

    (alarm,) = client("cloudwatch", moto_endpoint).describe_alarms()["MetricAlarms"]
    assert alarm["AlarmActions"] == [policy["PolicyARN"]]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    stat = queries["queue"]["MetricStat"]["Metric"]
    assert (stat["Namespace"], stat["MetricName"]) == ("sourcegraph-executor", "src_executors_queue_size")
    assert {d["Name"]: d["Value"] for d in stat["Dimensions"]} == {"queueName": "codeintel", "environment": "prod"}
    assert queries["needed"]["Expression"] == "CEIL(queue / 10)"


def env_file_of(user_data: str) -> str:
    script = base64.b64decode(user_data).decode()
    match = re.search(r"<<'EXECUTOR_ENV_EOF'\n(.*?)EXECUTOR_ENV_EOF\n", script, re.S)
    assert match, "the user data must write the env file through a quoted heredoc"
    return match.group(1)


def test_launch_template_user_data_carries_the_env_file(applied: Any, moto_endpoint: str) -> None:
    ec2 = client("ec2", moto_endpoint)
    (template,) = ec2.describe_launch_templates()["LaunchTemplates"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    data = version["LaunchTemplateData"]
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    env = dict(shlex.split(line)[0].split("=", 1) for line in env_file_of(data["UserData"]).splitlines())
    assert env["EXECUTOR_FRONTEND_PASSWORD"] == TRICKY_PASSWORD
    assert env["EXECUTOR_FRONTEND_URL"] == "http://127.0.0.1:3080"
    assert env["EXECUTOR_QUEUE_NAME"] == "codeintel"
    assert env["EXECUTOR_DOCKER_REGISTRY_MIRROR_URL"] == "http://10.0.1.4:5000"


def test_mirror_and_credentials_exist(applied: Any, moto_endpoint: str) -> None:
    _, _, _, outputs = applied
    ec2 = client("ec2", moto_endpoint)
    reservations = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    (mirror,) = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert mirror["PrivateIpAddress"] == "10.0.1.4"
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [mirror["InstanceId"]]}])
    (data_volume,) = [v for v in volumes["Volumes"] if v["Attachments"][0]["Device"] == "/dev/sdf"]
    assert data_volume["Size"] == 64

    iam = client("iam", moto_endpoint)
    (key,) = iam.list_access_keys(UserName="executor-metric-writer")["AccessKeyMetadata"]
    assert key["AccessKeyId"] == outputs["metric_writer_access_key_id"]
    assert outputs["metric_writer_secret_key"]
    (policy_name,) = iam.list_user_policies(UserName="executor-metric-writer")["PolicyNames"]
    document = iam.get_user_policy(UserName="executor-metric-writer", PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert [s["Action"] for s in document["Statement"]] == ["cloudwatch:PutMetricData"]

    dashboards = client("cloudwatch", moto_endpoint).list_dashboards()["DashboardEntries"]
    assert [d["DashboardName"] for d in dashboards] == [outputs["dashboard_name"]]
    groups = client("logs", moto_endpoint).describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/executor-fleet/executors-codeintel"]


def changed_attributes(change: dict[str, Any]) -> set[str]:
    before, after = change["before"] or {}, change["after"] or {}
    unknown = change.get("after_unknown") or {}
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k) or unknown.get(k) is True}


def test_second_plan_changes_nothing(applied: Any, tmp_path: Path) -> None:
    tf, directory, env, _ = applied
    plan_file = tmp_path / "again.tfplan"
    tf.check(directory, "plan", "-input=false", f"-out={plan_file}", env=env)
    plan = json.loads(tf.check(directory, "show", "-json", str(plan_file), env=env).stdout)
    unexpected = {}
    seen: dict[str, set[str]] = {}
    for rc in plan["resource_changes"]:
        actions = rc["change"]["actions"]
        if actions == ["no-op"]:
            continue
        assert actions == ["update"], f"{rc['address']} would be {actions} on a second plan"
        changed = changed_attributes(rc["change"])
        seen.setdefault(rc["type"], set()).update(changed & MOTO_READBACK_GAPS.get(rc["type"], set()))
        extra = changed - MOTO_READBACK_GAPS.get(rc["type"], set())
        if extra:
            before, after = rc["change"]["before"] or {}, rc["change"]["after"] or {}
            unexpected[rc["address"]] = {k: (before.get(k), after.get(k)) for k in sorted(extra)}
    assert unexpected == {}
    # Every listed gap still shows: an entry that no longer does must leave the list (test_moto_readback.py).
    assert seen == MOTO_READBACK_GAPS


def test_destroy_leaves_nothing_behind(applied: Any, moto_endpoint: str) -> None:
    tf, directory, env, outputs = applied
    tf.check(directory, "destroy", "-auto-approve", "-input=false", env=env, timeout=600)
    assert client("autoscaling", moto_endpoint).describe_auto_scaling_groups()["AutoScalingGroups"] == []
    ec2 = client("ec2", moto_endpoint)
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []
    assert ec2.describe_volumes()["Volumes"] == []
    running = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert running["Reservations"] == []
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert client("iam", moto_endpoint).list_users()["Users"] == []
    cloudwatch = client("cloudwatch", moto_endpoint)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert cloudwatch.list_dashboards()["DashboardEntries"] == []
    assert client("logs", moto_endpoint).describe_log_groups()["logGroups"] == []
