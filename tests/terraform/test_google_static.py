"""The Google executors module's autoscaler and instance template against the Google provider's schema.

No Google provider can be installed here, so `terraform validate` cannot check these two resources. These tests
stand in: every argument and nested block must exist in the provider's schema (the subset below, from the
google provider's documentation of google_compute_region_autoscaler and google_compute_instance_template),
required ones must be set, and the rules that tie fields together (per-group metric scaling, Spot scheduling)
must hold.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from metrics_publisher.backends import google as google_backend
from tests.terraform.harness import REPO_TERRAFORM
from tests.terraform.hcl import load, unquote

MODULE = REPO_TERRAFORM / "google/modules/executors"

# name -> (arguments, nested blocks with their own schema, required names)
Schema = tuple[set[str], dict[str, Any], set[str]]
METRIC: Schema = ({"name", "single_instance_assignment", "target", "type", "filter"}, {}, {"name"})
AUTOSCALING_POLICY: Schema = (
    {"min_replicas", "max_replicas", "cooldown_period", "mode"},
    {
        "metric": METRIC,
        "cpu_utilization": ({"target", "predictive_method"}, {}, {"target"}),
        "load_balancing_utilization": ({"target"}, {}, {"target"}),
        "scale_in_control": ({"time_window_sec"}, {"max_scaled_in_replicas": ({"fixed", "percent"}, {}, set())}, set()),
        "scaling_schedules": (
            {"name", "min_required_replicas", "schedule", "time_zone", "duration_sec", "disabled", "description"},
            {},
            {"name", "min_required_replicas", "schedule", "duration_sec"},
        ),
    },
    {"min_replicas", "max_replicas"},
)
AUTOSCALER: Schema = (
    {"name", "region", "target", "project", "description"},
    {"autoscaling_policy": AUTOSCALING_POLICY},
    {"name", "target", "autoscaling_policy"},
)
INSTANCE_TEMPLATE: Schema = (
    {
        "name", "name_prefix", "machine_type", "project", "region", "description", "instance_description", "labels",
        "metadata", "metadata_startup_script", "tags", "can_ip_forward", "min_cpu_platform", "resource_policies",
        "enable_display", "resource_manager_tags", "key_revocation_action_type",
    },
    {
        "disk": (
            {
                "auto_delete", "boot", "device_name", "disk_name", "source_image", "interface", "mode", "source",
                "disk_type", "disk_size_gb", "labels", "type", "resource_policies", "provisioned_iops",
                "provisioned_throughput", "resource_manager_tags", "source_snapshot",
            },
            {"disk_encryption_key": ({"kms_key_self_link"}, {}, set())},
            set(),
        ),
        "network_interface": (
            {"network", "subnetwork", "subnetwork_project", "network_ip", "nic_type", "stack_type", "queue_count"},
            {
                "access_config": ({"nat_ip", "network_tier", "public_ptr_domain_name"}, {}, set()),
                "alias_ip_range": ({"ip_cidr_range", "subnetwork_range_name"}, {}, {"ip_cidr_range"}),
            },
            set(),
        ),
        "scheduling": (
            {
                "automatic_restart", "on_host_maintenance", "preemptible", "provisioning_model",
                "instance_termination_action", "min_node_cpus",
            },
            {"node_affinities": ({"key", "operator", "values"}, {}, {"key", "operator", "values"})},
            set(),
        ),
        "service_account": ({"email", "scopes"}, {}, {"scopes"}),
        "advanced_machine_features": (
            {"enable_nested_virtualization", "threads_per_core", "visible_core_count", "enable_uefi_networking"},
            {},
            set(),
        ),
        "shielded_instance_config": (
            {"enable_secure_boot", "enable_vtpm", "enable_integrity_monitoring"},
            {},
            set(),
        ),
        "lifecycle": ({"create_before_destroy", "prevent_destroy", "ignore_changes"}, {}, set()),
    },
    {"machine_type", "disk"},
)  # fmt: skip


def resource(kind: str) -> dict[str, Any]:
    found = [
        body
        for path in sorted(MODULE.glob("*.tf"))
        for block in load(path).get("resource", [])
        for rtype, named in block.items()
        if unquote(rtype) == kind
        for body in named.values()
    ]
    assert len(found) == 1, f"expected one {kind} in {MODULE}"
    return found[0]


def check(body: dict[str, Any], schema: Schema, where: str) -> list[str]:
    arguments, nested, required = schema
    problems = []
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if key == "dynamic":  # dynamic "name" { content { ... } }
            for dyn in value if isinstance(value, list) else [value]:
                for name, spec in dyn.items():
                    name = str(unquote(name))
                    if name not in nested:
                        problems.append(f"{where}: no block {name!r} in the provider schema")
                        continue
                    for content in spec.get("content", []):
                        problems += check(content, nested[name], f"{where}.{name}")
            continue
        if key in nested:
            for block in value if isinstance(value, list) else [value]:
                problems += check(block, nested[key], f"{where}.{key}")
        elif key not in arguments:
            problems.append(f"{where}: no argument {key!r} in the provider schema")
    dynamics = body.get("dynamic", [])
    present = set(body) | {
        str(unquote(n)) for dyn in (dynamics if isinstance(dynamics, list) else [dynamics]) for n in dyn
    }
    problems += [f"{where}: required {name!r} is not set" for name in sorted(required - present)]
    return problems


@pytest.mark.parametrize(
    ("kind", "schema"),
    [("google_compute_region_autoscaler", AUTOSCALER), ("google_compute_instance_template", INSTANCE_TEMPLATE)],
)
def test_fields_exist_in_the_provider_schema(kind: str, schema: Schema) -> None:
    assert check(resource(kind), schema, kind) == []


def test_the_schema_check_finds_misspelled_and_missing_fields() -> None:
    body = {"name": "x", "target": "t", "autoscaling_policy": [{"max_replica": 3, "metric": [{"filter": "f"}]}]}
    assert check(body, AUTOSCALER, "a") == [
        "a.autoscaling_policy: no argument 'max_replica' in the provider schema",
        "a.autoscaling_policy.metric: required 'name' is not set",
        "a.autoscaling_policy: required 'max_replicas' is not set",
        "a.autoscaling_policy: required 'min_replicas' is not set",
    ]


def test_metric_is_a_per_group_queue_metric() -> None:
    (policy,) = resource("google_compute_region_autoscaler")["autoscaling_policy"]
    (metric,) = policy["metric"]
    # single_instance_assignment (instances = metric / value) excludes a utilization target and its type.
    assert "single_instance_assignment" in metric and not {"target", "type"} & set(metric)
    scaling = (MODULE / "scaling.tf").read_text()
    metric_type = re.search(r'queue_metric_type\s*=\s*"([^"]+)"', scaling)
    assert metric_type and metric_type.group(1) == google_backend.METRIC_TYPE
    # A per-group metric's filter must select the global resource, joining plain equalities with AND only.
    selectors = re.findall(r'^\s*"(.*)",\s*$', scaling.split("queue_metric_filter", 1)[1].split("])", 1)[0], re.M)
    assert selectors and selectors[0] == 'resource.type = \\"global\\"'
    assert all(re.fullmatch(r'[a-z.A-Z]+ = \\"[^"]*\\"', s) for s in selectors), selectors
    assert 'join(" AND "' in scaling


def test_spot_scheduling_fields_move_together() -> None:
    (scheduling,) = resource("google_compute_instance_template")["scheduling"]
    # Spot VMs need preemptible, no automatic restart, TERMINATE on maintenance and a termination action; standard
    # VMs must have no termination action. All of them must follow the same variable.
    for field in ("preemptible", "automatic_restart", "on_host_maintenance", "provisioning_model",
                  "instance_termination_action"):  # fmt: skip
        assert "var.preemptible" in str(scheduling[field]), field
    assert '"SPOT"' in str(scheduling["provisioning_model"]) and '"TERMINATE"' in str(scheduling["on_host_maintenance"])


def test_instance_template_runs_the_startup_and_shutdown_scripts() -> None:
    (metadata,) = [resource("google_compute_instance_template")["metadata"]]
    assert {"startup-script", "shutdown-script"} <= {str(unquote(k)) for k in metadata}
