"""Why a second `terraform plan` against moto is not empty: each attribute moto reads back differently from what it
was given, shown with plain boto3 (no terraform, no provider) on the same moto server.

`MOTO_READBACK_GAPS` is the only list test_moto_apply's second plan may show as changed. Every entry has a pin here
that fails once moto answers like AWS does (then the entry must go), and the list cannot gain an entry without a
pin (test_every_gap_is_pinned). Anything else on the second plan is the modules' bug and fails that test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.terraform.moto_fleet import client

pytestmark = pytest.mark.terraform

MOTO_READBACK_GAPS: dict[str, set[str]] = {
    # Launched with a network interface specification (the provider does that when associate_public_ip_address is
    # set), moto lists the groups on the interface only, not on the instance.
    "aws_instance": {"vpc_security_group_ids"},
    # moto returns the template's own tags (a `launch-template` tag specification) inside the template data, so the
    # provider sees an extra tag specification and writes a new version on every apply; the version numbers follow.
    "aws_launch_template": {"tag_specifications", "default_version", "latest_version"},
    # The launch template version follows the new version above; moto answers without the group's capacity
    # reservation preference, which AWS reports as `default` when none was set.
    "aws_autoscaling_group": {"launch_template", "capacity_reservation_specification"},
    # Without a notification target, moto answers with fixed sample ARNs for the target and the role.
    "aws_autoscaling_lifecycle_hook": {"notification_target_arn", "role_arn"},
    # moto omits `Enabled` (read as false) and returns an empty predictive-scaling block for a step policy.
    "aws_autoscaling_policy": {"enabled", "predictive_scaling_configuration"},
}
# Attributes that only change because another gap did; they have no readback of their own to pin.
CONSEQUENCES = {("aws_launch_template", "default_version"), ("aws_launch_template", "latest_version"),
                ("aws_autoscaling_group", "launch_template")}  # fmt: skip


@pytest.fixture(scope="module")
def network(spare_moto_endpoint: str) -> Iterator[dict[str, str]]:
    ec2 = client("ec2", spare_moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-west-2a")["Subnet"]
    group = ec2.create_security_group(GroupName="readback", Description="readback pins", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    yield {"vpc": vpc, "subnet": subnet["SubnetId"], "group": group, "image": image}


def pin_instance_security_groups(ec2: Any, net: dict[str, str]) -> None:
    interface = {
        "DeviceIndex": 0,
        "SubnetId": net["subnet"],
        "Groups": [net["group"]],
        "AssociatePublicIpAddress": True,
    }
    (launched,) = ec2.run_instances(ImageId=net["image"], MinCount=1, MaxCount=1, NetworkInterfaces=[interface])[
        "Instances"
    ]
    (read,) = ec2.describe_instances(InstanceIds=[launched["InstanceId"]])["Reservations"][0]["Instances"]
    assert [g["GroupId"] for n in read["NetworkInterfaces"] for g in n["Groups"]] == [net["group"]]
    assert read["SecurityGroups"] == [], "moto now reports the groups: drop aws_instance from MOTO_READBACK_GAPS"


def pin_launch_template_tags(ec2: Any, net: dict[str, str]) -> None:
    instance_tags = {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "pin"}]}
    template = ec2.create_launch_template(
        LaunchTemplateName="readback-pin",
        LaunchTemplateData={"ImageId": net["image"], "TagSpecifications": [instance_tags]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "t"}]}],
    )["LaunchTemplate"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    specs = version["LaunchTemplateData"]["TagSpecifications"]
    assert instance_tags in specs
    assert [s["ResourceType"] for s in specs] == ["instance", "launch-template"], (
        "moto no longer mixes the template's own tags into its data: drop aws_launch_template from the gaps"
    )


def _group(spare_moto_endpoint: str, net: dict[str, str], name: str) -> Any:
    ec2, autoscaling = client("ec2", spare_moto_endpoint), client("autoscaling", spare_moto_endpoint)
    template = ec2.create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": net["image"]})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=0,
        MaxSize=2,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"},
        VPCZoneIdentifier=net["subnet"],
    )
    return autoscaling


def pin_group_capacity_reservation(spare_moto_endpoint: str, net: dict[str, str]) -> None:
    autoscaling = _group(spare_moto_endpoint, net, "readback-group")
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["readback-group"])["AutoScalingGroups"]
    assert "CapacityReservationSpecification" not in group, (
        "moto now returns the capacity reservation preference: drop it from the gaps"
    )


def pin_lifecycle_hook_arns(spare_moto_endpoint: str, net: dict[str, str]) -> None:
    autoscaling = _group(spare_moto_endpoint, net, "readback-hook")
    autoscaling.put_lifecycle_hook(
        AutoScalingGroupName="readback-hook",
        LifecycleHookName="drain",
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=300,
        DefaultResult="CONTINUE",
    )
    (hook,) = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="readback-hook")["LifecycleHooks"]
    # No target and no role were given; AWS returns neither.
    assert hook.get("NotificationTargetARN", "").startswith("arn:aws:sqs:"), hook
    assert hook.get("RoleARN", "").startswith("arn:aws:iam::"), hook


def pin_scaling_policy_enabled(spare_moto_endpoint: str, net: dict[str, str]) -> None:
    autoscaling = _group(spare_moto_endpoint, net, "readback-policy")
    autoscaling.put_scaling_policy(
        AutoScalingGroupName="readback-policy",
        PolicyName="step",
        PolicyType="StepScaling",
        AdjustmentType="ExactCapacity",
        Enabled=True,
        StepAdjustments=[{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
    )
    (policy,) = autoscaling.describe_policies(AutoScalingGroupName="readback-policy")["ScalingPolicies"]
    assert "Enabled" not in policy, "moto now returns Enabled: drop `enabled` from the gaps"
    assert policy.get("PredictiveScalingConfiguration") == {}, "drop predictive_scaling_configuration from the gaps"


PINS = {
    ("aws_instance", "vpc_security_group_ids"): "test_instance_launched_with_an_interface_shows_no_groups",
    ("aws_launch_template", "tag_specifications"): "test_launch_template_data_carries_the_templates_own_tags",
    ("aws_autoscaling_group", "capacity_reservation_specification"): "test_group_reads_back_without_reservation",
    ("aws_autoscaling_lifecycle_hook", "notification_target_arn"): "test_lifecycle_hook_gets_sample_arns",
    ("aws_autoscaling_lifecycle_hook", "role_arn"): "test_lifecycle_hook_gets_sample_arns",
    ("aws_autoscaling_policy", "enabled"): "test_step_policy_reads_back_without_enabled",
    ("aws_autoscaling_policy", "predictive_scaling_configuration"): "test_step_policy_reads_back_without_enabled",
}


def test_every_gap_is_pinned() -> None:
    listed = {(kind, attr) for kind, attrs in MOTO_READBACK_GAPS.items() for attr in attrs}
    assert listed == set(PINS) | CONSEQUENCES
    assert {kind for kind, _ in CONSEQUENCES} <= set(MOTO_READBACK_GAPS)
    assert all(name in globals() for name in PINS.values())


def test_instance_launched_with_an_interface_shows_no_groups(spare_moto_endpoint: str, network: dict[str, str]) -> None:
    pin_instance_security_groups(client("ec2", spare_moto_endpoint), network)
    # For contrast: launched with plain SecurityGroupIds, moto reports them, so the gap is the interface route.
    (plain,) = client("ec2", spare_moto_endpoint).run_instances(
        ImageId=network["image"],
        MinCount=1,
        MaxCount=1,
        SubnetId=network["subnet"],
        SecurityGroupIds=[network["group"]],
    )["Instances"]
    assert [g["GroupId"] for g in plain["SecurityGroups"]] == [network["group"]]


def test_launch_template_data_carries_the_templates_own_tags(spare_moto_endpoint: str, network: dict[str, str]) -> None:
    pin_launch_template_tags(client("ec2", spare_moto_endpoint), network)


def test_lifecycle_hook_gets_sample_arns(spare_moto_endpoint: str, network: dict[str, str]) -> None:
    pin_lifecycle_hook_arns(spare_moto_endpoint, network)


def test_step_policy_reads_back_without_enabled(spare_moto_endpoint: str, network: dict[str, str]) -> None:
    pin_scaling_policy_enabled(spare_moto_endpoint, network)


def test_group_reads_back_without_reservation(spare_moto_endpoint: str, network: dict[str, str]) -> None:
    pin_group_capacity_reservation(spare_moto_endpoint, network)
