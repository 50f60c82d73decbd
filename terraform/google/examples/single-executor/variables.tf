variable "project_id" {
  type        = string
  description = "Google Cloud project of the fleet."
}

variable "region" {
  type        = string
  default     = "us-central1"
  description = "Region of the fleet."
}

variable "zone" {
  type        = string
  default     = "us-central1-c"
  description = "Zone of the Docker mirror."
}

variable "executor_image" {
  type        = string
  description = "Executor image, e.g. projects/my-project/global/images/executor-1-0-0."
}

variable "executor_sourcegraph_external_url" {
  type        = string
  description = "URL of the fleet server as executors reach it."
}

variable "executor_sourcegraph_executor_proxy_password" {
  type        = string
  sensitive   = true
  description = "The fleet server's FLEET_EXECUTORS_ACCESS_TOKEN."
}
