output "network_id" {
  description = "Id of the network."
  value       = google_compute_network.this.id
}

output "subnet_id" {
  description = "Id of the subnetwork for executors and the Docker mirror."
  value       = google_compute_subnetwork.this.id
}

output "subnet_cidr" {
  description = "Address range of that subnetwork."
  value       = google_compute_subnetwork.this.ip_cidr_range
}

output "nat" {
  description = "Whether Cloud NAT serves the subnetwork (VMs then need no external IP)."
  value       = var.nat
}
