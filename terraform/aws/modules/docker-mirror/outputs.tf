output "url" {
  description = "Registry mirror URL for the executors (EXECUTOR_DOCKER_REGISTRY_MIRROR_URL)."
  # Read from the instance so that executors launch only after the mirror holds its address in the subnet.
  value = "http://${aws_instance.this.private_ip}:5000"
}

output "node_exporter_url" {
  description = "Node exporter of the mirror host (DOCKER_REGISTRY_NODE_EXPORTER_URL), or empty without one."
  value       = var.node_exporter_image != "" ? "http://${aws_instance.this.private_ip}:9100" : ""
}

output "static_ip" {
  description = "Private IP of the mirror."
  value       = aws_instance.this.private_ip
}

output "instance_id" {
  description = "Id of the mirror instance."
  value       = aws_instance.this.id
}

output "data_volume_id" {
  description = "Id of the data volume holding the cache."
  value       = aws_ebs_volume.data.id
}

output "startup_script" {
  description = "The mirror's rendered startup script (user data)."
  value       = local.startup_script
}
