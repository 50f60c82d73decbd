output "autoscaling_group_name" {
  description = "Name of the executors' autoscaling group."
  value       = aws_autoscaling_group.this.name
}

output "launch_template_id" {
  description = "Id of the executors' launch template."
  value       = aws_launch_template.this.id
}

output "metric_queue_name" {
  description = "The `queueName` dimension the autoscaling reads; the publisher must write the same."
  value       = local.metric_queue_name
}

output "scaling_table" {
  description = "What the scaling policies implement: each range of needed = ceil(queue / jobs_per_instance_scaling) and the capacity it sets."
  value       = local.scaling_table
}

output "env_names" {
  description = "The agent settings written to /etc/systemd/system/executor.env."
  value       = module.env.names
}

output "startup_script" {
  description = "The rendered startup script (user data); contains the executor secret."
  value       = local.startup_script
  sensitive   = true
}

output "log_group_name" {
  description = "CloudWatch Logs group receiving the executors' logs."
  value       = aws_cloudwatch_log_group.this.name
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard, or null when create_dashboard is false."
  value       = var.create_dashboard ? aws_cloudwatch_dashboard.this[0].dashboard_name : null
}

output "dashboard_widgets" {
  description = "The dashboard's widgets, for composing a dashboard over several pools."
  value       = local.dashboard_widgets
}

output "instance_role_name" {
  description = "IAM role of the executor instances."
  value       = aws_iam_role.this.name
}

output "assign_public_ip" {
  description = "Whether executors get a public IP."
  value       = one(aws_launch_template.this.network_interfaces).associate_public_ip_address
}
