locals {
  # The agent's configuration names (contract section 5). Anything else in the file would be silently ignored by
  # the agent, so a typo is refused here instead of failing on a running VM.
  agent_env_names = toset([
    "EXECUTOR_FRONTEND_URL", "EXECUTOR_FRONTEND_PASSWORD", "EXECUTOR_QUEUE_NAME", "EXECUTOR_QUEUE_NAMES",
    "EXECUTOR_USE_FIRECRACKER", "EXECUTOR_MAXIMUM_NUM_JOBS", "EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "EXECUTOR_JOB_MEMORY",
    "EXECUTOR_JOB_NUM_CPUS", "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL", "EXECUTOR_FIRECRACKER_DISK_SPACE",
    "EXECUTOR_FIRECRACKER_BANDWIDTH_EGRESS", "EXECUTOR_FIRECRACKER_BANDWIDTH_INGRESS", "EXECUTOR_KEEP_WORKSPACES",
    "EXECUTOR_MAX_ACTIVE_TIME", "EXECUTOR_NUM_TOTAL_JOBS", "EXECUTOR_DOCKER_HOST_MOUNT_PATH",
    "EXECUTOR_QUEUE_POLL_INTERVAL", "EXECUTOR_CLEANUP_TASK_INTERVAL", "EXECUTOR_VM_PREFIX",
    "EXECUTOR_VM_STARTUP_SCRIPT_PATH", "NODE_EXPORTER_URL", "EXECUTOR_FIRECRACKER_IMAGE",
    "EXECUTOR_FIRECRACKER_KERNEL_IMAGE", "EXECUTOR_FIRECRACKER_SANDBOX_IMAGE", "DOCKER_REGISTRY_NODE_EXPORTER_URL",
    "SRC_LOG_LEVEL", "EXECUTOR_RUNTIME", "DOCKER_HOST", "EXECUTOR_METRICS_ADDR",
  ])

  present = { for name, value in var.env : name => value if value != null }
  # The names are never secret, even when a value (the executor secret) makes the whole map sensitive.
  names   = nonsensitive(sort(keys(local.present)))
  unknown = sort(setsubtract(local.names, local.agent_env_names))

  # Single quotes keep `$`, backslashes, double quotes and spaces literal for both systemd's EnvironmentFile
  # parser and a shell `source`; an embedded single quote closes the quote, is escaped, and reopens it.
  lines   = [for name in local.names : "${name}='${replace(local.present[name], "'", "'\\''")}'"]
  content = "${join("\n", local.lines)}\n"
}
