output "instance_group_manager" {
  description = "Id of the executors' regional managed instance group."
  value       = google_compute_region_instance_group_manager.this.id
}

output "instance_template" {
  description = "Id of the executors' instance template."
  value       = google_compute_instance_template.this.id
}

output "metric_queue_name" {
  description = "The `queueName` label the autoscaler filters on; the publisher must write the same."
  value       = local.metric_queue_name
}

output "autoscaler_metric_filter" {
  description = "The Cloud Monitoring filter of the autoscaler's metric."
  value       = local.queue_metric_filter
}

output "env_names" {
  description = "The agent settings written to /etc/systemd/system/executor.env."
  value       = module.env.names
}

output "startup_script" {
  description = "The rendered startup script; contains the executor secret."
  value       = local.startup_script
  sensitive   = true
}

output "service_account_email" {
  description = "Service account of the executor VMs."
  value       = google_service_account.this.email
}
