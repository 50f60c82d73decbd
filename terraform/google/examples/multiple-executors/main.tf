# One network and one Docker mirror shared by two pools: `codeintel` (auto-indexing) and `batches` (server-side
# batch changes), each scaling on its own queue.
module "networking" {
  source     = "../../modules/networking"
  project_id = var.project_id
  region     = var.region
}

module "docker_mirror" {
  source     = "../../modules/docker-mirror"
  project_id = var.project_id
  zone       = var.zone
  subnet_id  = module.networking.subnet_id
  static_ip  = "10.0.1.2"
}

locals {
  pools = {
    codeintel = { machine_type = "n2-standard-8", min_replicas = 0, max_replicas = 10, jobs_per_instance_scaling = 20 }
    batches   = { machine_type = "n2-standard-8", min_replicas = 0, max_replicas = 4, jobs_per_instance_scaling = 5 }
  }
}

module "executors" {
  source   = "../../modules/executors"
  for_each = local.pools

  project_id                          = var.project_id
  region                              = var.region
  subnet_id                           = module.networking.subnet_id
  image                               = var.executor_image
  machine_type                        = each.value.machine_type
  sourcegraph_external_url            = var.executor_sourcegraph_external_url
  sourcegraph_executor_proxy_password = var.executor_sourcegraph_executor_proxy_password
  queue_name                          = each.key
  instance_tag                        = each.key
  metrics_environment_label           = "prod"
  min_replicas                        = each.value.min_replicas
  max_replicas                        = each.value.max_replicas
  jobs_per_instance_scaling           = each.value.jobs_per_instance_scaling
  docker_registry_mirror              = module.docker_mirror.url
  docker_registry_node_exporter_url   = module.docker_mirror.node_exporter_url
}

module "credentials" {
  source     = "../../modules/credentials"
  project_id = var.project_id
}
