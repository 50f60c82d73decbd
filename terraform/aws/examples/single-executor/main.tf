# One pool of executors for the `codeintel` queue, scaling between 0 and 5 instances, with the credentials the
# metrics publisher needs to feed the autoscaling.
module "executors" {
  source = "../.."

  availability_zone                            = var.availability_zone
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
}

module "credentials" {
  source = "../../modules/credentials"
}
