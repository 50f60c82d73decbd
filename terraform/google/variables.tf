variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`."

  validation {
    condition     = can(regex("^([a-z][a-z0-9-]{0,9})?$", var.resource_prefix))
    error_message = "resource_prefix: use at most 10 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "project_id" {
  type        = string
  default     = null
  description = "Google Cloud project of the fleet; null = the google provider's project (as seed 001's block leaves it out)."
}

variable "region" {
  type        = string
  default     = "us-central1"
  description = "Region of the fleet (subnetwork, NAT, regional instance group)."
}

variable "zone" {
  type        = string
  default     = "us-central1-c"
  description = "Zone of the Docker mirror and its data disk, inside region."

  validation {
    condition     = startswith(var.zone, "${var.region}-")
    error_message = "zone: must lie in region (e.g. us-central1-c for us-central1)."
  }
}

variable "randomize_resource_names" {
  type        = bool
  default     = false
  description = "Add a random part (drawn at the first apply, then kept) to every name so that two fleets can share a project."
}

variable "subnet_cidr" {
  type        = string
  default     = "10.0.1.0/24"
  description = "Address range of the executors' subnet; docker_mirror_static_ip lies in it."

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr: expected a CIDR block like 10.0.1.0/24."
  }
}

variable "nat" {
  type        = bool
  default     = false
  description = "Private fleet: no external IPs, outbound traffic through Cloud NAT."
}

variable "ssh_access_cidr_range" {
  type        = string
  default     = ""
  description = "CIDR block allowed to SSH into the VMs; empty closes SSH."
}

variable "http_metrics_access_cidr_range" {
  type        = string
  default     = ""
  description = "CIDR block allowed to scrape the executors' and mirror's metrics; empty: the subnet only."
}

variable "docker_mirror_static_ip" {
  type        = string
  default     = "10.0.1.2"
  description = "Internal IP of the Docker registry mirror, inside subnet_cidr."

  validation {
    condition = (
      can(cidrhost("${var.docker_mirror_static_ip}/32", 0)) &&
      can(cidrsubnet(var.subnet_cidr, 0, 0)) &&
      try(cidrsubnet("${var.docker_mirror_static_ip}/${split("/", var.subnet_cidr)[1]}", 0, 0) == cidrsubnet(var.subnet_cidr, 0, 0), false) &&
      !contains([for i in [0, 1, -2, -1] : cidrhost(var.subnet_cidr, i)], var.docker_mirror_static_ip)
    )
    error_message = "docker_mirror_static_ip: must be an address inside subnet_cidr other than its first and last two (reserved by Google Cloud), e.g. 10.0.1.2 for 10.0.1.0/24."
  }
}

variable "docker_mirror_machine_type" {
  type        = string
  default     = "n2-standard-2"
  description = "Machine type of the Docker mirror."
}

variable "docker_mirror_boot_disk_size" {
  type        = number
  default     = 32
  description = "Boot disk size of the mirror in GB."
}

variable "docker_mirror_disk_size" {
  type        = number
  default     = 64
  description = "Size in GB of the mirror's separate persistent disk (the image cache)."
}

variable "executor_machine_type" {
  type        = string
  default     = "n2-standard-8"
  description = "Machine type of the executors; Firecracker needs nested virtualization (N2, N1, C2 families)."
}

variable "executor_boot_disk_size" {
  type        = number
  default     = 500
  description = "Boot disk size of each executor in GB."
}

variable "executor_sourcegraph_external_url" {
  type        = string
  description = "URL of the fleet server as executors reach it (EXECUTOR_FRONTEND_URL)."
}

variable "executor_sourcegraph_executor_proxy_password" {
  type        = string
  sensitive   = true
  description = "The shared executor secret configured on the fleet server (EXECUTOR_FRONTEND_PASSWORD); at least 20 characters."
}

variable "executor_queue_name" {
  type        = string
  default     = null
  description = "Queue the executors work on, e.g. `codeintel` or `batches`. Set this or executor_queue_names."
}

variable "executor_queue_names" {
  type        = list(string)
  default     = []
  description = "Several queues for the executors (EXECUTOR_QUEUE_NAMES)."
}

variable "executor_instance_tag" {
  type        = string
  description = "Value of the `executor_tag` label on every executor; Prometheus discovers executors by it."
}

variable "executor_metrics_environment_label" {
  type        = string
  description = "The `environment` label of the scaling metric; equal to the publisher's EXECUTOR_METRIC_ENVIRONMENT_LABEL."
}

variable "min_replicas" {
  type        = number
  default     = 1
  description = "Fewest executor instances; 0 allowed."
}

variable "max_replicas" {
  type        = number
  default     = 1
  description = "Most executor instances."
}

variable "jobs_per_instance_scaling" {
  type        = number
  default     = 360
  description = "Queued jobs per instance: the group aims at ceil(queue size / jobs_per_instance_scaling) instances."
}

variable "executor_use_firecracker" {
  type        = bool
  default     = true
  description = "Isolate jobs in Firecracker VMs (EXECUTOR_USE_FIRECRACKER)."
}

variable "executor_maximum_num_jobs" {
  type        = number
  default     = 1
  description = "Jobs one executor runs at once (EXECUTOR_MAXIMUM_NUM_JOBS)."
}

variable "executor_maximum_runtime_per_job" {
  type        = string
  default     = "30m"
  description = "Longest a job may run (EXECUTOR_MAXIMUM_RUNTIME_PER_JOB)."
}

variable "executor_job_num_cpus" {
  type        = number
  default     = 4
  description = "CPUs per job (EXECUTOR_JOB_NUM_CPUS)."
}

variable "executor_job_memory" {
  type        = string
  default     = "12G"
  description = "Memory per job (EXECUTOR_JOB_MEMORY)."
}

variable "executor_firecracker_disk_space" {
  type        = string
  default     = "20G"
  description = "Disk per job VM (EXECUTOR_FIRECRACKER_DISK_SPACE)."
}

variable "executor_num_total_jobs" {
  type        = number
  default     = 0
  description = "Jobs after which an executor retires (EXECUTOR_NUM_TOTAL_JOBS); 0 means never."
}

variable "executor_max_active_time" {
  type        = string
  default     = "0"
  description = "Time after which an executor retires (EXECUTOR_MAX_ACTIVE_TIME); 0 means never."
}

variable "executor_log_level" {
  type        = string
  default     = "warn"
  description = "Agent log level (SRC_LOG_LEVEL)."
}

variable "executor_extra_env" {
  type        = map(string)
  default     = {}
  description = "Further agent settings by environment name."
}

variable "docker_mirror_image" {
  type        = string
  default     = "projects/cos-cloud/global/images/family/cos-stable"
  description = "Image of the Docker mirror VM: the mirror image from images/mirror, or any image with Docker."
}

variable "executor_image" {
  type        = string
  default     = null
  description = "Executor image with Docker, the `executor` program and its `executor.service` unit; null = the newest image of the `executor-fleet-executor` family in the project (built with Packer from images/executor, see examples/single-executor/README.md)."
}

variable "executor_preemptible_machines" {
  type        = bool
  default     = false
  description = "Run executors on Spot VMs."
}

variable "labels" {
  type        = map(string)
  default     = {}
  description = "Labels added to every resource."
}
