output "autoscaling_group_name" {
  description = "Name of the executors' autoscaling group."
  value       = module.executors.autoscaling_group_name
}

output "docker_mirror_url" {
  description = "URL of the Docker registry mirror."
  value       = module.executors.docker_mirror_url
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = module.executors.dashboard_name
}

output "metric_writer_access_key_id" {
  description = "EXECUTOR_METRIC_AWS_ACCESS_KEY_ID for the metrics publisher."
  value       = module.credentials.metric_writer_access_key_id
}

output "metric_writer_secret_key" {
  description = "EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY for the metrics publisher."
  value       = module.credentials.metric_writer_secret_key
  sensitive   = true
}
