variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`; lets several fleets share an account."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{0,24}$", var.resource_prefix))
    error_message = "resource_prefix: use at most 24 letters, digits and dashes."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of the subnet(s), e.g. us-west-2a."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", var.availability_zone))
    error_message = "availability_zone: expected a zone name like us-west-2a."
  }
}

variable "vpc_cidr" {
  type        = string
  default     = "10.0.0.0/16"
  description = "Address range of the VPC."

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr: expected a CIDR block like 10.0.0.0/16."
  }
}

variable "subnet_cidr" {
  type        = string
  default     = "10.0.1.0/24"
  description = "Address range of the subnet holding the executors and the Docker mirror (docker_mirror_static_ip lies in it)."

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr: expected a CIDR block like 10.0.1.0/24."
  }
}

variable "nat" {
  type        = bool
  default     = false
  description = "Keep executors and mirror off the internet: their subnet reaches out through a NAT gateway and gets no public IPs."
}

variable "nat_subnet_cidr" {
  type        = string
  default     = "10.0.0.0/28"
  description = "Address range of the small public subnet that holds the NAT gateway (used when nat = true)."

  validation {
    condition     = can(cidrhost(var.nat_subnet_cidr, 0))
    error_message = "nat_subnet_cidr: expected a CIDR block like 10.0.0.0/28."
  }
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
  description = "CIDR block allowed to scrape the executors' metrics port (9999), e.g. your Prometheus; empty: the subnet only."

  validation {
    condition     = var.http_metrics_access_cidr_range == "" || can(cidrhost(var.http_metrics_access_cidr_range, 0))
    error_message = "http_metrics_access_cidr_range: expected a CIDR block, or an empty string."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
