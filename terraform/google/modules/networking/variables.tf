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

variable "region" {
  type        = string
  description = "Region of the subnetwork (and of the NAT router), e.g. us-central1."
}

variable "subnet_cidr" {
  type        = string
  default     = "10.0.1.0/24"
  description = "Address range of the subnetwork holding the executors and the Docker mirror (docker_mirror_static_ip lies in it)."

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr: expected a CIDR block like 10.0.1.0/24."
  }
}

variable "nat" {
  type        = bool
  default     = false
  description = "Create a Cloud Router with Cloud NAT so that VMs without external IPs reach the internet."
}

variable "ssh_access_cidr_range" {
  type        = string
  default     = ""
  description = "CIDR block allowed to SSH into executors and the mirror; empty closes SSH."

  validation {
    condition     = var.ssh_access_cidr_range == "" || can(cidrhost(var.ssh_access_cidr_range, 0))
    error_message = "ssh_access_cidr_range: expected a CIDR block like 203.0.113.0/24, or an empty string."
  }
}

variable "http_metrics_access_cidr_range" {
  type        = string
  default     = ""
  description = "CIDR block allowed to scrape the executors' metrics port (9999) and the mirror's metrics; empty: the subnet only."

  validation {
    condition     = var.http_metrics_access_cidr_range == "" || can(cidrhost(var.http_metrics_access_cidr_range, 0))
    error_message = "http_metrics_access_cidr_range: expected a CIDR block, or an empty string."
  }
}
