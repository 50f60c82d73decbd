"""The Terraform working directory a fleet config becomes: `main.tf.json` calling our modules, plus a tfvars file.

Both files are rendered from the config on every command, so editing `fleet.toml` and re-running `plan`/`apply` is
all it takes. The executor secret is a sensitive variable with no value in any file: Terraform gets it from
TF_VAR_executor_secret in the environment of the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleet.infra.config import Cloud, ConfigError, FleetConfig, PoolConfig, StateBackend

MAIN_FILE = "main.tf.json"
VARS_FILE = "terraform.tfvars.json"
SECRET_VARIABLE = "executor_secret"
METRICS_NAMESPACE = "sourcegraph-executor"


def module_root(config: FleetConfig, override: Path | None = None) -> Path:
    """Our Terraform modules for the config's cloud: `terraform/<cloud>` of this project, unless overridden."""
    root = override or Path(__file__).resolve().parents[2] / "terraform" / config.cloud.value
    if not (root / "modules" / "executors").is_dir():
        raise ConfigError(
            f"no Terraform modules for {config.cloud.value} at {root}: pass --modules DIR pointing at a checkout "
            f"of executor-fleet's terraform/{config.cloud.value}"
        )
    return root.resolve()


def _pool_vars(config: FleetConfig, pool: PoolConfig) -> dict[str, Any]:
    return {
        "queue_name": pool.queue,
        "queue_names": sorted(pool.queues),
        "instance_tag": pool.name,
        "machine_type": pool.machine_type,
        "image": pool.image or config.executor_image,
        "min_replicas": pool.min_replicas,
        "max_replicas": pool.max_replicas,
        "jobs_per_instance_scaling": pool.jobs_per_instance_scaling,
        "maximum_num_jobs": pool.job_slots,
        "job_num_cpus": pool.job_cpus,
        "job_memory": pool.job_memory,
        "firecracker_disk_space": pool.job_disk,
        "use_spot": pool.spot,
        "use_firecracker": pool.use_firecracker,
    }


def tfvars(config: FleetConfig) -> dict[str, Any]:
    values: dict[str, Any] = {
        "region": config.region,
        "zone": config.zone,
        "resource_prefix": f"{config.name}-",
        "fleet_url": config.fleet_url,
        "private_networking": config.private_networking,
        "ssh_access_cidr_range": config.ssh_access_cidr_range,
        "metrics_environment_label": config.metrics_environment,
        "mirror_image": config.mirror.image or config.executor_image,
        "mirror_disk_size": config.mirror.disk_size,
        "mirror_static_ip": config.mirror.static_ip,
        "pools": {p.name: _pool_vars(config, p) for p in config.pools},
    }
    if config.mirror.machine_type:
        values["mirror_machine_type"] = config.mirror.machine_type
    if config.project:
        values["project"] = config.project
    return values


def _backend(config: FleetConfig) -> dict[str, Any]:
    state = config.state
    if state.backend is StateBackend.LOCAL:
        return {"local": {"path": state.path}}
    if state.backend is StateBackend.S3:
        return {"s3": {"bucket": state.bucket, "key": state.key, "region": state.region or config.region}}
    return {"gcs": {"bucket": state.bucket, "prefix": state.key}}


def _variables(values: dict[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = {name: {} for name in values}
    declared[SECRET_VARIABLE] = {"type": "string", "sensitive": True, "description": "From TF_VAR_executor_secret."}
    return declared


def _source(root: Path, workdir: Path, module: str) -> str:
    # A relative local path keeps every module in one package, so the modules may refer to each other with "../";
    # an absolute path would make Terraform copy each module alone.
    rel = os.path.relpath(root / "modules" / module, workdir.resolve())
    return rel if rel.startswith("../") else f"./{rel}"


def _mirror(root: Path, workdir: Path, values: dict[str, Any], **cloud_specific: Any) -> dict[str, Any]:
    mirror: dict[str, Any] = {
        "source": _source(root, workdir, "docker-mirror"),
        "resource_prefix": "${var.resource_prefix}",
        "subnet_id": "${module.networking.subnet_id}",
        "assign_public_ip": "${!var.private_networking}",
        "static_ip": "${var.mirror_static_ip}",
        "disk_size": "${var.mirror_disk_size}",
        **cloud_specific,
    }
    if "mirror_machine_type" in values:
        mirror["machine_type"] = "${var.mirror_machine_type}"
    return mirror


def _executor_common() -> dict[str, Any]:
    """Inputs the executors module takes under the same name on both clouds."""
    return {
        "sourcegraph_external_url": "${var.fleet_url}",
        "sourcegraph_executor_proxy_password": f"${{var.{SECRET_VARIABLE}}}",
        "queue_name": "${each.value.queue_name}",
        "queue_names": "${each.value.queue_names}",
        "instance_tag": "${each.value.instance_tag}",
        "metrics_environment_label": "${var.metrics_environment_label}",
        "min_replicas": "${each.value.min_replicas}",
        "max_replicas": "${each.value.max_replicas}",
        "jobs_per_instance_scaling": "${each.value.jobs_per_instance_scaling}",
        "maximum_num_jobs": "${each.value.maximum_num_jobs}",
        "job_num_cpus": "${each.value.job_num_cpus}",
        "job_memory": "${each.value.job_memory}",
        "firecracker_disk_space": "${each.value.firecracker_disk_space}",
        "use_firecracker": "${each.value.use_firecracker}",
        "docker_registry_mirror": "${module.docker_mirror.url}",
        "docker_registry_node_exporter_url": "${module.docker_mirror.node_exporter_url}",
    }


def _aws_modules(root: Path, workdir: Path, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    mirror = _mirror(
        root,
        workdir,
        values,
        availability_zone="${module.networking.availability_zone}",
        security_group_ids=["${module.networking.docker_mirror_security_group_id}"],
        ami="${var.mirror_image}",
    )
    modules = {
        "networking": {
            "source": _source(root, workdir, "networking"),
            "resource_prefix": "${var.resource_prefix}",
            "availability_zone": "${var.zone}",
            "nat": "${var.private_networking}",
            "ssh_access_cidr_range": "${var.ssh_access_cidr_range}",
        },
        "docker_mirror": mirror,
        "executors": {
            "source": _source(root, workdir, "executors"),
            "for_each": "${var.pools}",
            "resource_prefix": "${var.resource_prefix}",
            "subnet_ids": ["${module.networking.subnet_id}"],
            "security_group_ids": ["${module.networking.executor_security_group_id}"],
            "assign_public_ip": "${!var.private_networking}",
            "ami": "${each.value.image}",
            "machine_type": "${each.value.machine_type}",
            "use_spot": "${each.value.use_spot}",
            "metrics_namespace": METRICS_NAMESPACE,
            **_executor_common(),
        },
        "credentials": {
            "source": _source(root, workdir, "credentials"),
            "resource_prefix": "${var.resource_prefix}",
            "metrics_namespace": METRICS_NAMESPACE,
        },
    }
    outputs = {
        "instance_groups": {"value": "${{ for k, m in module.executors : k => m.autoscaling_group_name }}"},
        "metric_queue_names": {"value": "${{ for k, m in module.executors : k => m.metric_queue_name }}"},
        "docker_mirror_url": {"value": "${module.docker_mirror.url}"},
        "metric_writer_access_key_id": {"value": "${module.credentials.metric_writer_access_key_id}"},
        "metric_writer_secret_key": {"value": "${module.credentials.metric_writer_secret_key}", "sensitive": True},
    }
    return modules, outputs


def _google_modules(root: Path, workdir: Path, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    mirror = _mirror(
        root, workdir, values, project_id="${var.project}", zone="${var.zone}", image="${var.mirror_image}"
    )
    modules = {
        "networking": {
            "source": _source(root, workdir, "networking"),
            "resource_prefix": "${var.resource_prefix}",
            "project_id": "${var.project}",
            "region": "${var.region}",
            "nat": "${var.private_networking}",
            "ssh_access_cidr_range": "${var.ssh_access_cidr_range}",
        },
        "docker_mirror": mirror,
        "executors": {
            "source": _source(root, workdir, "executors"),
            "for_each": "${var.pools}",
            "resource_prefix": "${var.resource_prefix}",
            "project_id": "${var.project}",
            "region": "${var.region}",
            "subnet_id": "${module.networking.subnet_id}",
            "assign_public_ip": "${!var.private_networking}",
            "image": "${each.value.image}",
            "machine_type": "${each.value.machine_type}",
            "preemptible": "${each.value.use_spot}",
            **_executor_common(),
        },
        "credentials": {
            "source": _source(root, workdir, "credentials"),
            "project_id": "${var.project}",
            "resource_prefix": "${var.resource_prefix}",
        },
    }
    outputs = {
        "instance_groups": {"value": "${{ for k, m in module.executors : k => m.instance_group_manager }}"},
        "metric_queue_names": {"value": "${{ for k, m in module.executors : k => m.metric_queue_name }}"},
        "docker_mirror_url": {"value": "${module.docker_mirror.url}"},
        "metric_writer_credentials_file": {
            "value": "${module.credentials.metric_writer_credentials_file}",
            "sensitive": True,
        },
    }
    return modules, outputs


def render(config: FleetConfig, root: Path, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two files' contents: (main.tf.json, terraform.tfvars.json)."""
    values = tfvars(config)
    if config.cloud is Cloud.AWS:
        modules, outputs = _aws_modules(root, workdir, values)
        provider = {"aws": {"region": "${var.region}"}}
    else:
        modules, outputs = _google_modules(root, workdir, values)
        provider = {"google": {"project": "${var.project}", "region": "${var.region}", "zone": "${var.zone}"}}
    outputs["region"] = {"value": "${var.region}"}
    outputs["metrics_environment_label"] = {"value": "${var.metrics_environment_label}"}
    main = {
        "terraform": {"backend": _backend(config)},
        "provider": provider,
        "variable": _variables(values),
        "module": modules,
        "output": outputs,
    }
    return main, values


def write(config: FleetConfig, workdir: Path, root: Path) -> None:
    """Write both files whole (temp file then rename), so an interrupted write never leaves half a config."""
    main, values = render(config, root, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, doc in ((MAIN_FILE, main), (VARS_FILE, values)):
        tmp = workdir / f".{name}.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(workdir / name)
