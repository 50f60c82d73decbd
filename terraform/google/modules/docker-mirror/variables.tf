variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`; lets several fleets share a project."

  validation {
    condition     = can(regex("^([a-z][a-z0-9-]{0,23})?$", var.resource_prefix))
    error_message = "resource_prefix: use at most 24 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "project_id" {
  type        = string
  description = "Google Cloud project of the fleet."
}

variable "zone" {
  type        = string
  description = "Zone of the mirror VM and its data disk, e.g. us-central1-c."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "zone: expected a zone name like us-central1-c."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnetwork of the mirror (the networking module's `subnet_id`); static_ip must lie in it."
}

variable "static_ip" {
  type        = string
  default     = "10.0.1.2"
  description = "Internal IP reserved for the mirror; executors are pointed at http://<static_ip>:5000."

  validation {
    condition     = can(cidrhost("${var.static_ip}/32", 0))
    error_message = "static_ip: expected an IPv4 address like 10.0.1.2."
  }
}

variable "assign_public_ip" {
  type        = bool
  default     = true
  description = "Give the mirror an external IP (set false with Cloud NAT)."
}

variable "image" {
  type        = string
  default     = "projects/cos-cloud/global/images/family/cos-stable"
  description = "Image of the mirror VM: the mirror image from images/mirror, or any image with Docker (Container-Optimized OS has it)."
}

variable "machine_type" {
  type        = string
  default     = "n2-standard-2"
  description = "Machine type of the mirror."
}

variable "boot_disk_size" {
  type        = number
  default     = 32
  description = "Boot disk size in GB."

  validation {
    condition     = var.boot_disk_size >= 10 && var.boot_disk_size <= 65536
    error_message = "boot_disk_size: expected 10 to 65536 (GB)."
  }
}

variable "disk_size" {
  type        = number
  default     = 64
  description = "Size in GB of the separate persistent disk holding the cached images; it outlives the VM."

  validation {
    condition     = var.disk_size >= 10 && var.disk_size <= 65536
    error_message = "disk_size: expected 10 to 65536 (GB)."
  }
}

variable "upstream_url" {
  type        = string
  default     = "https://registry-1.docker.io"
  description = "Registry the mirror pulls through to."

  validation {
    condition     = can(regex("^https?://[^\\s'\"]+$", var.upstream_url))
    error_message = "upstream_url: expected an http(s) URL."
  }
}

variable "registry_image" {
  type        = string
  default     = "registry:2"
  description = "Image of the registry."
}

variable "node_exporter_image" {
  type        = string
  default     = "prom/node-exporter:v1.8.2"
  description = "Node exporter image for host metrics on :9100; empty for none."
}

variable "labels" {
  type        = map(string)
  default     = {}
  description = "Labels added to every resource."
}
