variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the names of every resource, e.g. `prod-`; lets several fleets share an account."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{0,24}$", var.resource_prefix))
    error_message = "resource_prefix: use at most 24 letters, digits and dashes."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets the executor instances are launched in (the networking module's `subnet_id`)."

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids: give at least one subnet."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the executor instances (the networking module's `executor_security_group_id`)."
}

variable "assign_public_ip" {
  type        = bool
  default     = true
  description = "Give executors a public IP. Set false for private subnets that reach the internet through NAT."
}

variable "ami" {
  type        = string
  description = "Executor image (AMI id) with Docker, the `executor` program and its `executor.service` unit."

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami))
    error_message = "ami: expected an AMI id like ami-0123456789abcdef0."
  }
}

variable "machine_type" {
  type        = string
  default     = "c5n.metal"
  description = "EC2 instance type. The default is a metal type: a microVM per job (`use_firecracker`) needs KVM, which EC2 offers on .metal types; `use_firecracker = false` runs anywhere."
}

variable "boot_disk_size" {
  type        = number
  default     = 500
  description = "Root volume size in GB; holds the job workspaces and the VM images."

  validation {
    condition     = var.boot_disk_size >= 20 && var.boot_disk_size <= 16384
    error_message = "boot_disk_size: expected 20 to 16384 (GB)."
  }
}

variable "boot_disk_iops" {
  type        = number
  default     = 3000
  description = "Provisioned IOPS of the gp3 root volume."

  validation {
    condition     = var.boot_disk_iops >= 3000 && var.boot_disk_iops <= 16000
    error_message = "boot_disk_iops: gp3 allows 3000 to 16000."
  }
}

variable "use_spot" {
  type        = bool
  default     = false
  description = "Run executors on spot capacity. A reclaimed instance's job is retried on another executor."
}

variable "ssh_key_name" {
  type        = string
  default     = null
  description = "Optional EC2 key pair for SSH access (SSH is also limited by the security group)."
}

variable "sourcegraph_external_url" {
  type        = string
  description = "URL of the fleet server as executors reach it (EXECUTOR_FRONTEND_URL)."

  validation {
    condition     = can(regex("^https?://[^\\s'\"]+$", var.sourcegraph_external_url))
    error_message = "sourcegraph_external_url: expected an http:// or https:// URL without spaces or quotes."
  }
}

variable "sourcegraph_executor_proxy_password" {
  type        = string
  sensitive   = true
  description = "The shared executor secret configured on the fleet server (EXECUTOR_FRONTEND_PASSWORD)."

  validation {
    condition     = length(var.sourcegraph_executor_proxy_password) >= 20 && length(regexall("[\r\n]", var.sourcegraph_executor_proxy_password)) == 0
    error_message = "sourcegraph_executor_proxy_password: use at least 20 characters and no line breaks (the fleet server refuses shorter secrets)."
  }
}

variable "queue_name" {
  type        = string
  default     = null
  description = "The queue this pool works on, e.g. `codeintel` or `batches` (EXECUTOR_QUEUE_NAME). Set this or `queue_names`."

  validation {
    condition     = (var.queue_name == null ? 0 : 1) + (length(var.queue_names) > 0 ? 1 : 0) == 1
    error_message = "queue_name: set exactly one of queue_name and queue_names."
  }
}

variable "queue_names" {
  type        = list(string)
  default     = []
  description = "Several queues for one pool (EXECUTOR_QUEUE_NAMES). The scaling metric's queueName is their sorted names joined by `_`."

  validation {
    condition     = alltrue([for q in var.queue_names : can(regex("^[a-z0-9][a-z0-9-]*$", q))])
    error_message = "queue_names: use lower-case letters, digits and dashes."
  }
}

variable "instance_tag" {
  type        = string
  description = "Value of the `executor_tag` tag on every instance; Prometheus discovers executors by it."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,23}$", var.instance_tag))
    error_message = "instance_tag: use at most 24 lower-case letters, digits and dashes, starting with a letter or digit."
  }
}

variable "metrics_environment_label" {
  type        = string
  description = "The `environment` dimension of the scaling metric; must equal the publisher's EXECUTOR_METRIC_ENVIRONMENT_LABEL."

  validation {
    condition     = length(var.metrics_environment_label) > 0
    error_message = "metrics_environment_label: must not be empty."
  }
}

variable "metrics_namespace" {
  type        = string
  default     = "sourcegraph-executor"
  description = "CloudWatch namespace of the scaling metric; must equal the publisher's EXECUTOR_METRIC_AWS_NAMESPACE."
}

variable "min_replicas" {
  type        = number
  default     = 1
  description = "Fewest executor instances; 0 lets the pool scale to nothing when its queue is empty."

  validation {
    condition     = var.min_replicas >= 0 && floor(var.min_replicas) == var.min_replicas
    error_message = "min_replicas: expected a whole number >= 0."
  }
}

variable "max_replicas" {
  type        = number
  default     = 1
  description = "Most executor instances."

  validation {
    condition     = floor(var.max_replicas) == var.max_replicas && var.max_replicas >= var.min_replicas && var.max_replicas >= 1 && var.max_replicas <= 999
    error_message = "max_replicas: expected a whole number from max(1, min_replicas) to 999."
  }
}

variable "jobs_per_instance_scaling" {
  type        = number
  default     = 360
  description = "Queued jobs per instance: the pool aims at ceil(queue size / jobs_per_instance_scaling) instances."

  validation {
    condition     = var.jobs_per_instance_scaling >= 1 && floor(var.jobs_per_instance_scaling) == var.jobs_per_instance_scaling
    error_message = "jobs_per_instance_scaling: expected a whole number >= 1."
  }
}

variable "termination_drain_timeout" {
  type        = number
  default     = 2100
  description = "Seconds a scale-in waits for an instance's running jobs to finish before terminating it anyway."

  validation {
    condition     = var.termination_drain_timeout >= 30 && var.termination_drain_timeout <= 7200
    error_message = "termination_drain_timeout: expected 30 to 7200 seconds."
  }
}

variable "use_firecracker" {
  type        = bool
  default     = true
  description = "Isolate jobs in Firecracker VMs (EXECUTOR_USE_FIRECRACKER); needs KVM."
}

variable "maximum_num_jobs" {
  type        = number
  default     = 1
  description = "Jobs one instance runs at once (EXECUTOR_MAXIMUM_NUM_JOBS)."

  validation {
    condition     = var.maximum_num_jobs >= 1 && floor(var.maximum_num_jobs) == var.maximum_num_jobs
    error_message = "maximum_num_jobs: expected a whole number >= 1."
  }
}

variable "maximum_runtime_per_job" {
  type        = string
  default     = "30m"
  description = "Longest a job may run (EXECUTOR_MAXIMUM_RUNTIME_PER_JOB), Go-style duration such as 30m or 1h30m."

  validation {
    condition     = can(regex("^([0-9]+(h|m|s|ms))+$", var.maximum_runtime_per_job))
    error_message = "maximum_runtime_per_job: expected a duration like 30m, 1h30m or 90s."
  }
}

variable "job_num_cpus" {
  type        = number
  default     = 4
  description = "CPUs per job VM or container (EXECUTOR_JOB_NUM_CPUS)."
}

variable "job_memory" {
  type        = string
  default     = "12G"
  description = "Memory per job VM or container (EXECUTOR_JOB_MEMORY), e.g. 12G or 512M."

  validation {
    condition     = can(regex("^[0-9]+([KMGT]B?)?$", var.job_memory))
    error_message = "job_memory: expected a size like 12G, 12GB or 512M."
  }
}

variable "firecracker_disk_space" {
  type        = string
  default     = "20G"
  description = "Disk per job VM (EXECUTOR_FIRECRACKER_DISK_SPACE)."

  validation {
    condition     = can(regex("^[0-9]+([KMGT]B?)?$", var.firecracker_disk_space))
    error_message = "firecracker_disk_space: expected a size like 20G."
  }
}

variable "num_total_jobs" {
  type        = number
  default     = 0
  description = "Jobs after which an instance retires (EXECUTOR_NUM_TOTAL_JOBS); 0 means never."
}

variable "max_active_time" {
  type        = string
  default     = "0"
  description = "Time after which an instance retires (EXECUTOR_MAX_ACTIVE_TIME), e.g. 12h; 0 means never."

  validation {
    condition     = can(regex("^(0|([0-9]+(h|m|s|ms))+)$", var.max_active_time))
    error_message = "max_active_time: expected 0 or a duration like 12h."
  }
}

variable "docker_registry_mirror" {
  type        = string
  default     = ""
  description = "URL of the Docker registry mirror, e.g. http://10.0.1.4:5000 (the docker-mirror module's `url`); empty for none."

  validation {
    condition     = var.docker_registry_mirror == "" || can(regex("^https?://[^\\s'\"]+$", var.docker_registry_mirror))
    error_message = "docker_registry_mirror: expected an http(s) URL or an empty string."
  }
}

variable "docker_registry_node_exporter_url" {
  type        = string
  default     = ""
  description = "Node exporter URL of the mirror host (DOCKER_REGISTRY_NODE_EXPORTER_URL); empty for none."
}

variable "log_level" {
  type        = string
  default     = "warn"
  description = "Agent log level (SRC_LOG_LEVEL)."

  validation {
    condition     = contains(["dbug", "info", "warn", "error", "crit"], var.log_level)
    error_message = "log_level: expected one of dbug, info, warn, error, crit."
  }
}

variable "extra_env" {
  type        = map(string)
  default     = {}
  description = "Further agent settings by environment name (for example EXECUTOR_KEEP_WORKSPACES); only the agent's names are accepted."

  validation {
    condition     = length(setintersection(keys(var.extra_env), nonsensitive(keys(local.env_from_variables)))) == 0
    error_message = "extra_env: ${join(", ", sort(setintersection(keys(var.extra_env), nonsensitive(keys(local.env_from_variables)))))} is set by this module's own variables (e.g. queue_name, maximum_num_jobs); use those instead."
  }
}

variable "log_retention_days" {
  type        = number
  default     = 14
  description = "Days CloudWatch Logs keeps the executors' logs."

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days: use a value CloudWatch Logs accepts, e.g. 7, 14, 30 or 90."
  }
}

variable "create_dashboard" {
  type        = bool
  default     = true
  description = "Create a CloudWatch dashboard with this pool's queue size, desired capacity and instance count."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
