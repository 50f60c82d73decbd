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

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id: expected a project id like my-project-123."
  }
}

variable "region" {
  type        = string
  description = "Region of the regional managed instance group, e.g. us-central1."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: expected a region name like us-central1."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnetwork of the executors (the networking module's `subnet_id`)."
}

variable "assign_public_ip" {
  type        = bool
  default     = true
  description = "Give executors an external IP. Set false with Cloud NAT (private executors)."
}

variable "image" {
  type        = string
  description = "Executor image (self link or `projects/P/global/images/NAME`) with Docker, the `executor` program and its `executor.service` unit."

  validation {
    condition     = length(var.image) > 0
    error_message = "image: must not be empty; give the executor image built for this fleet."
  }
}

variable "machine_type" {
  type        = string
  default     = "n2-standard-8"
  description = "Machine type of the executors; Firecracker needs nested virtualization (N2, N1, C2 families)."
}

variable "boot_disk_type" {
  type        = string
  default     = "pd-ssd"
  description = "Boot disk type of the executors."

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd"], var.boot_disk_type)
    error_message = "boot_disk_type: expected pd-standard, pd-balanced or pd-ssd."
  }
}

variable "preemptible" {
  type        = bool
  default     = false
  description = "Run executors on Spot VMs. A reclaimed instance's job is retried on another executor."
}

variable "cooldown_period" {
  type        = number
  default     = 120
  description = "Seconds the autoscaler waits after a VM starts before reading its load; about the boot time of an executor."

  validation {
    condition     = var.cooldown_period >= 15
    error_message = "cooldown_period: expected at least 15 seconds."
  }
}

variable "labels" {
  type        = map(string)
  default     = {}
  description = "Labels added to every resource."
}

variable "boot_disk_size" {
  type        = number
  default     = 500
  description = "Boot disk size in GB; holds the job workspaces and the VM images."

  validation {
    condition     = var.boot_disk_size >= 20 && var.boot_disk_size <= 16384
    error_message = "boot_disk_size: expected 20 to 16384 (GB)."
  }
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
  description = "Value of the `executor_tag` label (and a network tag) on every instance; Prometheus discovers executors by it."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,23}$", var.instance_tag))
    error_message = "instance_tag: use at most 24 lower-case letters, digits and dashes, starting with a letter or digit."
  }
}

variable "metrics_environment_label" {
  type        = string
  description = "The `environment` label of the scaling metric; must equal the publisher's EXECUTOR_METRIC_ENVIRONMENT_LABEL."

  validation {
    condition     = length(var.metrics_environment_label) > 0
    error_message = "metrics_environment_label: must not be empty."
  }
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

variable "create_dashboard" {
  type        = bool
  default     = true
  description = "Create a Cloud Monitoring dashboard with this pool's queue size and instance count."
}
