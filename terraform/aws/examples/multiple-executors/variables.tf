variable "region" {
  type        = string
  default     = "us-west-2"
  description = "AWS region of the fleet."
}

variable "availability_zone" {
  type        = string
  default     = "us-west-2a"
  description = "Availability zone of the fleet."
}

variable "executor_ami" {
  type        = string
  description = "Executor image (AMI id)."
}

variable "docker_mirror_ami" {
  type        = string
  description = "Docker mirror image (AMI id); any image with Docker."
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
