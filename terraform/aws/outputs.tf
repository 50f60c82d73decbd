output "vpc_id" {
  description = "Id of the fleet's VPC."
  value       = module.networking.vpc_id
}

output "subnet_id" {
  description = "Id of the executors' subnet."
  value       = module.networking.subnet_id
}

output "docker_mirror_url" {
  description = "URL of the Docker registry mirror."
  value       = module.docker_mirror.url
}

output "autoscaling_group_name" {
  description = "Name of the executors' autoscaling group."
  value       = module.executors.autoscaling_group_name
}

output "metric_queue_name" {
  description = "The `queueName` dimension the autoscaling reads."
  value       = module.executors.metric_queue_name
}

output "scaling_table" {
  description = "Ranges of needed = ceil(queue / jobs_per_instance_scaling) and the capacity each sets."
  value       = module.executors.scaling_table
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = module.executors.dashboard_name
}

output "log_group_name" {
  description = "CloudWatch Logs group of the executors."
  value       = module.executors.log_group_name
}

output "availability_zone" {
  description = "Availability zone of the fleet: `availability_zone`, or the region's first."
  value       = local.availability_zone
}

output "executor_ami" {
  description = "AMI the executors boot: `executor_ami`, or this account's newest executor-fleet-executor-* image."
  value       = local.executor_ami
}

output "docker_mirror_ami" {
  description = "AMI of the Docker mirror: `docker_mirror_ami`, or this account's newest executor-fleet-mirror-* image."
  value       = local.docker_mirror_ami
}
