# The random part is drawn once and then kept: ignore_changes stops uuid() from renaming everything on every plan.
resource "terraform_data" "name_suffix" {
  count = var.randomize_resource_names ? 1 : 0
  input = "r${substr(replace(uuid(), "-", ""), 0, 6)}"

  lifecycle {
    ignore_changes = [input]
  }
}

# Seed 001's block names neither the project nor an image: the provider's project, and the image family the
# project's Packer build (images/executor) writes.
data "google_client_config" "current" {}

locals {
  prefix         = var.randomize_resource_names ? "${var.resource_prefix}${terraform_data.name_suffix[0].output}-" : var.resource_prefix
  project_id     = var.project_id != null ? var.project_id : data.google_client_config.current.project
  executor_image = var.executor_image != null ? var.executor_image : "projects/${local.project_id}/global/images/family/executor-fleet-executor"
}

module "networking" {
  source = "./modules/networking"

  resource_prefix                = local.prefix
  project_id                     = local.project_id
  region                         = var.region
  subnet_cidr                    = var.subnet_cidr
  nat                            = var.nat
  ssh_access_cidr_range          = var.ssh_access_cidr_range
  http_metrics_access_cidr_range = var.http_metrics_access_cidr_range
}

module "docker_mirror" {
  source = "./modules/docker-mirror"

  resource_prefix  = local.prefix
  project_id       = local.project_id
  zone             = var.zone
  subnet_id        = module.networking.subnet_id
  assign_public_ip = !var.nat
  static_ip        = var.docker_mirror_static_ip
  image            = var.docker_mirror_image
  machine_type     = var.docker_mirror_machine_type
  boot_disk_size   = var.docker_mirror_boot_disk_size
  disk_size        = var.docker_mirror_disk_size
  labels           = var.labels
}

module "executors" {
  source = "./modules/executors"

  resource_prefix                     = local.prefix
  project_id                          = local.project_id
  region                              = var.region
  subnet_id                           = module.networking.subnet_id
  assign_public_ip                    = !var.nat
  image                               = local.executor_image
  machine_type                        = var.executor_machine_type
  boot_disk_size                      = var.executor_boot_disk_size
  preemptible                         = var.executor_preemptible_machines
  sourcegraph_external_url            = var.executor_sourcegraph_external_url
  sourcegraph_executor_proxy_password = var.executor_sourcegraph_executor_proxy_password
  queue_name                          = var.executor_queue_name
  queue_names                         = var.executor_queue_names
  instance_tag                        = var.executor_instance_tag
  metrics_environment_label           = var.executor_metrics_environment_label
  min_replicas                        = var.min_replicas
  max_replicas                        = var.max_replicas
  jobs_per_instance_scaling           = var.jobs_per_instance_scaling
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
  labels                              = var.labels
}
