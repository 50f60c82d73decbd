output "url" {
  description = "Registry mirror URL for the executors (EXECUTOR_DOCKER_REGISTRY_MIRROR_URL)."
  value       = "http://${google_compute_address.this.address}:5000"
}

output "node_exporter_url" {
  description = "Node exporter of the mirror host (DOCKER_REGISTRY_NODE_EXPORTER_URL), or empty without one."
  value       = var.node_exporter_image != "" ? "http://${google_compute_address.this.address}:9100" : ""
}

output "static_ip" {
  description = "Internal IP of the mirror."
  value       = google_compute_address.this.address
}

output "data_disk_id" {
  description = "Id of the persistent disk holding the cache."
  value       = google_compute_disk.data.id
}
