variable "region" {
  type        = string
  default     = null
  description = "Region the metrics publisher writes to (EXECUTOR_METRIC_AWS_REGION), as seed 001's block sets it; null = the provider's region. IAM is global: it only fills the `metric_writer_region` output."

  validation {
    condition     = var.region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region: expected an AWS region name such as us-west-2."
  }
}

variable "resource_prefix" {
  type        = string
  default     = ""
  description = "Prefix for the IAM user's name, e.g. `prod-`."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{0,24}$", var.resource_prefix))
    error_message = "resource_prefix: use at most 24 letters, digits and dashes."
  }
}

variable "randomize_resource_names" {
  type        = bool
  default     = false
  description = "Append a random suffix (fixed at the first apply) to the IAM user's name so that several fleets can share an account."
}

variable "metrics_namespace" {
  type        = string
  default     = "sourcegraph-executor"
  description = "The only CloudWatch namespace the credentials may write to (EXECUTOR_METRIC_AWS_NAMESPACE)."

  validation {
    condition     = length(var.metrics_namespace) > 0 && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace: must not be empty or start with AWS/ (reserved by AWS)."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource."
}
