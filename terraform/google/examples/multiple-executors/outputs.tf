output "instance_group_managers" {
  description = "Instance group of each pool, by queue."
  value       = { for queue, pool in module.executors : queue => pool.instance_group_manager }
}

output "docker_mirror_url" {
  description = "URL of the shared Docker registry mirror."
  value       = module.docker_mirror.url
}

output "metric_writer_credentials_file" {
  description = "Base64 key file for the metrics publisher."
  value       = module.credentials.metric_writer_credentials_file
  sensitive   = true
}
