output "network_id" {
  description = "Id of the fleet's network."
  value       = module.networking.network_id
}

output "subnet_id" {
  description = "Id of the executors' subnetwork."
  value       = module.networking.subnet_id
}

output "docker_mirror_url" {
  description = "URL of the Docker registry mirror."
  value       = module.docker_mirror.url
}

output "instance_group_manager" {
  description = "Id of the executors' regional managed instance group."
  value       = module.executors.instance_group_manager
}

output "metric_queue_name" {
  description = "The `queueName` label the autoscaler filters on."
  value       = module.executors.metric_queue_name
}
