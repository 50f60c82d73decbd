variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`; lets several fleets share an account."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{0,24}$", var.resource_prefix))
    error_message = "resource_prefix: use at most 24 letters, digits and dashes."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the mirror (the networking module's `subnet_id`); static_ip must lie in it."
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of that subnet; the data volume is created there."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the mirror (the networking module's `docker_mirror_security_group_id`)."
}

variable "static_ip" {
  type        = string
  default     = "10.0.1.4"
  description = "Private IP of the mirror; executors are pointed at http://<static_ip>:5000."

  validation {
    condition     = can(cidrhost("${var.static_ip}/32", 0))
    error_message = "static_ip: expected an IPv4 address like 10.0.1.4."
  }
}

variable "assign_public_ip" {
  type        = bool
  default     = true
  description = "Give the mirror a public IP (set false behind NAT)."
}

variable "ami" {
  type        = string
  description = "Image (AMI id) of the mirror VM: the mirror image from images/mirror, or any image with Docker."

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami))
    error_message = "ami: expected an AMI id like ami-0123456789abcdef0."
  }
}

variable "machine_type" {
  type        = string
  default     = "m5.large"
  description = "EC2 instance type of the mirror."
}

variable "boot_disk_size" {
  type        = number
  default     = 32
  description = "Root volume size in GB."

  validation {
    condition     = var.boot_disk_size >= 8 && var.boot_disk_size <= 16384
    error_message = "boot_disk_size: expected 8 to 16384 (GB)."
  }
}

variable "disk_size" {
  type        = number
  default     = 64
  description = "Size in GB of the separate data volume holding the cached images; it outlives the instance."

  validation {
    condition     = var.disk_size >= 1 && var.disk_size <= 16384
    error_message = "disk_size: expected 1 to 16384 (GB)."
  }
}

variable "ssh_key_name" {
  type        = string
  default     = null
  description = "Optional EC2 key pair for SSH access."
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

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
