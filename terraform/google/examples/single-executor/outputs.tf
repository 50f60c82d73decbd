output "instance_group_manager" {
  description = "Id of the executors' instance group."
  value       = module.executors.instance_group_manager
}

output "docker_mirror_url" {
  description = "URL of the Docker registry mirror."
  value       = module.executors.docker_mirror_url
}

output "metric_writer_credentials_file" {
  description = "Base64 key file for the metrics publisher (EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT, decoded)."
  value       = module.credentials.metric_writer_credentials_file
  sensitive   = true
}
