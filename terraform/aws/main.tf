# The random part is drawn once and then kept: ignore_changes stops uuid() from renaming everything on every plan.
resource "terraform_data" "name_suffix" {
  count = var.randomize_resource_names ? 1 : 0
  input = substr(replace(uuid(), "-", ""), 0, 8)

  lifecycle {
    ignore_changes = [input]
  }
}

locals {
  prefix = var.randomize_resource_names ? "${var.resource_prefix}${terraform_data.name_suffix[0].output}-" : var.resource_prefix
  # Seed 001's executors block sets neither the zone nor the images: defaults from the region and the account.
  availability_zone = var.availability_zone != null ? var.availability_zone : data.aws_availability_zones.available[0].names[0]
  executor_ami      = var.executor_ami != null ? var.executor_ami : data.aws_ami_ids.executor[0].ids[0]
  docker_mirror_ami = var.docker_mirror_ami != null ? var.docker_mirror_ami : data.aws_ami_ids.docker_mirror[0].ids[0]
}

data "aws_availability_zones" "available" {
  count = var.availability_zone == null ? 1 : 0
  state = "available"
}

# No public executor-fleet AMIs exist: without an id, the newest image this account built with Packer (images/).
data "aws_ami_ids" "executor" {
  count  = var.executor_ami == null ? 1 : 0
  owners = ["self"]

  filter {
    name   = "name"
    values = ["executor-fleet-executor-*"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.ids) > 0
      error_message = "executor_ami: not set, and this account has no executor-fleet-executor-* AMI in this region. No public image is published: build one with Packer from images/executor (terraform/aws/examples/single-executor/README.md, \"Images\"), or set executor_ami to an AMI id."
    }
  }
}

data "aws_ami_ids" "docker_mirror" {
  count  = var.docker_mirror_ami == null ? 1 : 0
  owners = ["self"]

  filter {
    name   = "name"
    values = ["executor-fleet-mirror-*"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.ids) > 0
      error_message = "docker_mirror_ami: not set, and this account has no executor-fleet-mirror-* AMI in this region. No public image is published: build one with Packer from images/mirror (terraform/aws/examples/single-executor/README.md, \"Images\"), or set docker_mirror_ami to any AMI id with Docker."
    }
  }
}

module "networking" {
  source = "./modules/networking"

  resource_prefix                = local.prefix
  availability_zone              = local.availability_zone
  vpc_cidr                       = var.vpc_cidr
  subnet_cidr                    = var.subnet_cidr
  nat                            = var.nat
  ssh_access_cidr_range          = var.ssh_access_cidr_range
  http_metrics_access_cidr_range = var.http_metrics_access_cidr_range
  tags                           = var.tags
}

module "docker_mirror" {
  source = "./modules/docker-mirror"

  resource_prefix    = local.prefix
  subnet_id          = module.networking.subnet_id
  availability_zone  = module.networking.availability_zone
  security_group_ids = [module.networking.docker_mirror_security_group_id]
  assign_public_ip   = !var.nat
  static_ip          = var.docker_mirror_static_ip
  ami                = local.docker_mirror_ami
  machine_type       = var.docker_mirror_machine_type
  boot_disk_size     = var.docker_mirror_boot_disk_size
  disk_size          = var.docker_mirror_disk_size
  ssh_key_name       = var.ssh_key_name
  tags               = var.tags
}

module "executors" {
  source = "./modules/executors"

  resource_prefix                     = local.prefix
  subnet_ids                          = [module.networking.subnet_id]
  security_group_ids                  = [module.networking.executor_security_group_id]
  assign_public_ip                    = !var.nat
  ami                                 = local.executor_ami
  machine_type                        = var.executor_machine_type
  boot_disk_size                      = var.executor_boot_disk_size
  use_spot                            = var.executor_use_spot
  ssh_key_name                        = var.ssh_key_name
  sourcegraph_external_url            = var.executor_sourcegraph_external_url
  sourcegraph_executor_proxy_password = var.executor_sourcegraph_executor_proxy_password
  queue_name                          = var.executor_queue_name
  queue_names                         = var.executor_queue_names
  instance_tag                        = var.executor_instance_tag
  metrics_environment_label           = var.executor_metrics_environment_label
  metrics_namespace                   = var.executor_metrics_namespace
  min_replicas                        = var.min_replicas
  max_replicas                        = var.max_replicas
  jobs_per_instance_scaling           = var.jobs_per_instance_scaling
  termination_drain_timeout           = var.executor_termination_drain_timeout
  use_firecracker                     = var.executor_use_firecracker
  maximum_num_jobs                    = var.executor_maximum_num_jobs
  maximum_runtime_per_job             = var.executor_maximum_runtime_per_job
  job_num_cpus                        = var.executor_job_num_cpus
  job_memory                          = var.executor_job_memory
  firecracker_disk_space              = var.executor_firecracker_disk_space
  num_total_jobs                      = var.executor_num_total_jobs
  max_active_time                     = var.executor_max_active_time
  docker_registry_mirror              = module.docker_mirror.url
  docker_registry_node_exporter_url   = module.docker_mirror.node_exporter_url
  log_level                           = var.executor_log_level
  extra_env                           = var.executor_extra_env
  tags                                = var.tags
}
