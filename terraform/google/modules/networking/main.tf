locals {
  name           = "${var.resource_prefix}executors"
  metrics_source = var.http_metrics_access_cidr_range != "" ? var.http_metrics_access_cidr_range : var.subnet_cidr
}

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = local.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "this" {
  project                  = var.project_id
  name                     = local.name
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
}

resource "google_compute_router" "this" {
  count   = var.nat ? 1 : 0
  project = var.project_id
  name    = local.name
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  count                              = var.nat ? 1 : 0
  project                            = var.project_id
  name                               = local.name
  region                             = var.region
  router                             = google_compute_router.this[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.this.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }
}

resource "google_compute_firewall" "executor_metrics" {
  project       = var.project_id
  name          = "${local.name}-executor-metrics"
  network       = google_compute_network.this.id
  source_ranges = [local.metrics_source]
  target_tags   = ["executor"]

  allow {
    protocol = "tcp"
    ports    = ["9999"]
  }
}

resource "google_compute_firewall" "registry" {
  project       = var.project_id
  name          = "${local.name}-registry"
  network       = google_compute_network.this.id
  source_ranges = [var.subnet_cidr]
  target_tags   = ["docker-mirror"]

  allow {
    protocol = "tcp"
    ports    = ["5000"]
  }
}

resource "google_compute_firewall" "registry_metrics" {
  project       = var.project_id
  name          = "${local.name}-registry-metrics"
  network       = google_compute_network.this.id
  source_ranges = [local.metrics_source]
  target_tags   = ["docker-mirror"]

  allow {
    protocol = "tcp"
    ports    = ["5001", "9100"]
  }
}

resource "google_compute_firewall" "ssh" {
  count         = var.ssh_access_cidr_range != "" ? 1 : 0
  project       = var.project_id
  name          = "${local.name}-ssh"
  network       = google_compute_network.this.id
  source_ranges = [var.ssh_access_cidr_range]
  target_tags   = ["executor", "docker-mirror"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}
