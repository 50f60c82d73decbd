output "autoscaling_group_names" {
  description = "Autoscaling group of each pool, by queue."
  value       = { for queue, pool in module.executors : queue => pool.autoscaling_group_name }
}

output "docker_mirror_url" {
  description = "URL of the shared Docker registry mirror."
  value       = module.docker_mirror.url
}

output "dashboard_names" {
  description = "CloudWatch dashboard of each pool, by queue."
  value       = { for queue, pool in module.executors : queue => pool.dashboard_name }
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
