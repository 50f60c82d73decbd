# One pool of executors for the `codeintel` queue, scaling between 0 and 5 VMs, with the credentials the metrics
# publisher needs to feed the autoscaler.
module "executors" {
  source = "../.."

  project_id                                   = var.project_id
  region                                       = var.region
  zone                                         = var.zone
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
}

module "credentials" {
  source     = "../../modules/credentials"
  project_id = var.project_id
}
