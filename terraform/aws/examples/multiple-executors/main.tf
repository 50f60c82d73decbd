# One network and one Docker mirror shared by two pools: `codeintel` (auto-indexing) and `batches` (server-side
# batch changes), each scaling on its own queue.
module "networking" {
  source            = "../../modules/networking"
  availability_zone = var.availability_zone
}

module "docker_mirror" {
  source             = "../../modules/docker-mirror"
  subnet_id          = module.networking.subnet_id
  availability_zone  = module.networking.availability_zone
  security_group_ids = [module.networking.docker_mirror_security_group_id]
  static_ip          = "10.0.1.4"
  ami                = var.docker_mirror_ami
}

locals {
  pools = {
    codeintel = { machine_type = "c5n.metal", min_replicas = 0, max_replicas = 10, jobs_per_instance_scaling = 20 }
    batches   = { machine_type = "c5n.metal", min_replicas = 0, max_replicas = 4, jobs_per_instance_scaling = 5 }
  }
}

module "executors" {
  source   = "../../modules/executors"
  for_each = local.pools

  subnet_ids                          = [module.networking.subnet_id]
  security_group_ids                  = [module.networking.executor_security_group_id]
  ami                                 = var.executor_ami
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
  source = "../../modules/credentials"
}
