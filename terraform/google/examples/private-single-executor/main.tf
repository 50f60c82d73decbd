# Like single-executor, but no VM has an external IP: Cloud NAT carries traffic to the fleet server and Docker Hub,
# and metrics are open only to the given range.
module "executors" {
  source = "../.."

  project_id                                   = var.project_id
  region                                       = var.region
  zone                                         = var.zone
  nat                                          = true
  http_metrics_access_cidr_range               = "10.0.0.0/16"
  docker_mirror_static_ip                      = "10.0.1.2"
  executor_image                               = var.executor_image
  executor_sourcegraph_external_url            = var.executor_sourcegraph_external_url
  executor_sourcegraph_executor_proxy_password = var.executor_sourcegraph_executor_proxy_password
  executor_queue_name                          = "codeintel"
  executor_instance_tag                        = "codeintel"
  executor_metrics_environment_label           = "prod"
  min_replicas                                 = 0
  max_replicas                                 = 5
  jobs_per_instance_scaling                    = 10
  randomize_resource_names                     = true
}

module "credentials" {
  source                   = "../../modules/credentials"
  project_id               = var.project_id
  randomize_resource_names = true
}
