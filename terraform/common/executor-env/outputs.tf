output "content" {
  description = "The environment file: one NAME='value' line per setting, sorted by name, ending with a newline."
  value       = "${join("\n", local.lines)}\n"
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
