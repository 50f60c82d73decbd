variable "project_id" {
  type        = string
  default     = null
  description = "Google Cloud project the metric is written to (EXECUTOR_METRIC_GCP_PROJECT_ID); null = the provider's project."
}

variable "region" {
  type        = string
  default     = null
  description = "Region, as seed 001's block sets it. Service accounts and roles are global, and Cloud Monitoring metrics are per project: it is only checked for shape."

  validation {
    condition     = var.region == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: expected a Google Cloud region name such as us-central1."
  }
}

variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the service account and role names, e.g. `prod-`."

  validation {
    condition     = can(regex("^([a-z][a-z0-9-]{0,9})?$", var.resource_prefix))
    error_message = "resource_prefix: use at most 10 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "randomize_resource_names" {
  type        = bool
  default     = false
  description = "Append a random suffix (fixed at the first apply) to the names so that several fleets can share a project."
}
