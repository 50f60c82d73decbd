# Like single-executor, but nothing has a public IP: the subnet reaches the fleet server and Docker Hub through a
# NAT gateway; SSH stays closed and metrics are open to 10.0.0.0/16 only.
module "executors" {
  source = "../.."

  availability_zone                            = var.availability_zone
  nat                                          = true
  http_metrics_access_cidr_range               = "10.0.0.0/16"
  docker_mirror_ami                            = var.docker_mirror_ami
  docker_mirror_static_ip                      = "10.0.1.4"
  executor_ami                                 = var.executor_ami
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
  randomize_resource_names = true
}
