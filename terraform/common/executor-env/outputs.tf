output "content" {
  description = "The environment file: one NAME='value' line per setting, sorted by name, ending with a newline."
  value       = local.content
  sensitive   = true

  precondition {
    condition     = length(local.unknown) == 0
    error_message = "env: unknown executor setting(s) ${join(", ", local.unknown)}; use the names of the executor agent's configuration."
  }
}

output "names" {
  description = "The variable names written to the file, sorted."
  value       = local.names
}

output "setup_script" {
  description = "Bash fragment for a VM's startup script: writes the environment file (mode 600, atomically) and points Docker at the mirror."
  value       = templatefile("${path.module}/setup.sh.tftpl", { env_file = local.content, docker_mirror_url = var.docker_registry_mirror })
  sensitive   = true
}
