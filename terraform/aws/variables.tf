variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{0,15}$", var.resource_prefix))
    error_message = "resource_prefix: use at most 15 letters, digits and dashes."
  }
}

variable "randomize_resource_names" {
  type        = bool
  default     = false
  description = "Add a random part (drawn at the first apply, then kept) to every name so that two fleets can share an account and region."
}

variable "availability_zone" {
  type        = string
  default     = null
  description = "Availability zone of the fleet, e.g. us-west-2a; null = the region's first available zone."
}

variable "vpc_cidr" {
  type        = string
  default     = "10.0.0.0/16"
  description = "Address range of the VPC."
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
  description = "Private fleet: no public IPs, outbound traffic through a NAT gateway."
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

variable "ssh_key_name" {
  type        = string
  default     = null
  description = "Optional EC2 key pair installed on every VM."
}

variable "docker_mirror_static_ip" {
  type        = string
  default     = "10.0.1.4"
  description = "Private IP of the Docker registry mirror, inside subnet_cidr."

  validation {
    condition = (
      can(cidrhost("${var.docker_mirror_static_ip}/32", 0)) &&
      can(cidrsubnet(var.subnet_cidr, 0, 0)) &&
      try(cidrsubnet("${var.docker_mirror_static_ip}/${split("/", var.subnet_cidr)[1]}", 0, 0) == cidrsubnet(var.subnet_cidr, 0, 0), false) &&
      !contains([for i in range(4) : cidrhost(var.subnet_cidr, i)], var.docker_mirror_static_ip)
    )
    error_message = "docker_mirror_static_ip: must be an address inside subnet_cidr other than its first four (reserved by AWS), e.g. 10.0.1.4 for 10.0.1.0/24."
  }
}

variable "docker_mirror_ami" {
  type        = string
  default     = null
  description = "Image (AMI id) of the Docker mirror VM: the mirror image from images/mirror, or any image with Docker; null = this account's newest `executor-fleet-mirror-*` AMI (built with Packer, see examples/single-executor/README.md)."
}

variable "docker_mirror_machine_type" {
  type        = string
  default     = "m5.large"
  description = "EC2 instance type of the Docker mirror."
}

variable "docker_mirror_boot_disk_size" {
  type        = number
  default     = 32
  description = "Root volume size of the mirror in GB."
}

variable "docker_mirror_disk_size" {
  type        = number
  default     = 64
  description = "Size in GB of the mirror's separate data volume (the image cache)."
}

variable "executor_ami" {
  type        = string
  default     = null
  description = "Executor image (AMI id) with Docker, the `executor` program and its `executor.service` unit; null = this account's newest `executor-fleet-executor-*` AMI (built with Packer from images/executor, see examples/single-executor/README.md)."
}

variable "executor_machine_type" {
  type        = string
  default     = "c5n.metal"
  description = "EC2 instance type of the executors; Firecracker needs a metal type."
}

variable "executor_boot_disk_size" {
  type        = number
  default     = 500
  description = "Root volume size of each executor in GB."
}

variable "executor_use_spot" {
  type        = bool
  default     = false
  description = "Run executors on spot capacity."
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
  description = "Value of the `executor_tag` tag on every executor; Prometheus discovers executors by it."
}

variable "executor_metrics_environment_label" {
  type        = string
  description = "The `environment` dimension of the scaling metric; equal to the publisher's EXECUTOR_METRIC_ENVIRONMENT_LABEL."
}

variable "executor_metrics_namespace" {
  type        = string
  default     = "sourcegraph-executor"
  description = "CloudWatch namespace of the scaling metric (EXECUTOR_METRIC_AWS_NAMESPACE)."
}

variable "min_replicas" {
  type        = number
  default     = 1
  description = "Fewest executor instances; 0 allowed."
}

variable "max_replicas" {
  type        = number
  default     = 1
  description = "Most executor instances. Autoscaling needs max_replicas > min_replicas; equal values make a fixed-size pool of that many instances (the scaling policy then has nothing to change)."
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

variable "executor_termination_drain_timeout" {
  type        = number
  default     = 2100
  description = "Seconds a scale-in waits for an executor's running jobs to finish."
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

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
