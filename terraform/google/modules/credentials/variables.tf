variable "project_id" {
  type        = string
  description = "Google Cloud project the metric is written to (EXECUTOR_METRIC_GCP_PROJECT_ID)."
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
