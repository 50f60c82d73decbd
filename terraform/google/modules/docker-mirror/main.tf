locals {
  name = "${var.resource_prefix}executors-docker-mirror"
  # GCE names attached disks under /dev/disk/by-id/google-<device_name>.
  device_name = "registry-data"
  startup_script = templatefile("${path.module}/../../../common/docker-mirror-startup/startup.sh.tftpl", {
    data_disk_devices   = ["/dev/disk/by-id/google-${local.device_name}"]
    upstream_url        = var.upstream_url
    registry_image      = var.registry_image
    node_exporter_image = var.node_exporter_image
  })
}

resource "google_compute_address" "this" {
  project      = var.project_id
  name         = local.name
  region       = join("-", slice(split("-", var.zone), 0, 2))
  subnetwork   = var.subnet_id
  address_type = "INTERNAL"
  address      = var.static_ip
}

resource "google_compute_disk" "data" {
  project = var.project_id
  name    = "${local.name}-data"
  zone    = var.zone
  size    = var.disk_size
  type    = "pd-ssd"
  labels  = var.labels
}

resource "google_compute_instance" "this" {
  project      = var.project_id
  name         = local.name
  zone         = var.zone
  machine_type = var.machine_type
  tags         = ["docker-mirror"]
  labels       = var.labels

  metadata = {
    startup-script = local.startup_script
  }

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.boot_disk_size
    }
  }

  # Attached, not created with the VM: replacing the VM keeps the cache.
  attached_disk {
    source      = google_compute_disk.data.id
    device_name = local.device_name
  }

  network_interface {
    subnetwork = var.subnet_id
    network_ip = google_compute_address.this.address
    dynamic "access_config" {
      for_each = var.assign_public_ip ? [1] : []
      content {}
    }
  }

  service_account {
    scopes = ["logging-write", "monitoring-write"]
  }

  allow_stopping_for_update = true
}
