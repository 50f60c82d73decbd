variable "env" {
  type        = map(string)
  description = "Executor agent settings, keyed by their environment variable names. Null values are left out of the file."

  validation {
    condition     = alltrue([for v in values(var.env) : v == null ? true : length(regexall("[\r\n]", v)) == 0])
    error_message = "env: a value contains a line break, which an environment file cannot carry; remove it."
  }
}

variable "docker_registry_mirror" {
  type        = string
  default     = ""
  description = "Registry mirror URL Docker is pointed at by `setup_script`; empty leaves Docker's configuration alone."
}
