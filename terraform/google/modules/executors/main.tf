locals {
  name              = "${var.resource_prefix}executors-${var.instance_tag}"
  metric_queue_name = var.queue_name != null ? var.queue_name : join("_", sort(var.queue_names))

  env = merge(var.extra_env, local.env_from_variables)
  env_from_variables = {
    EXECUTOR_FRONTEND_URL               = var.sourcegraph_external_url
    EXECUTOR_FRONTEND_PASSWORD          = var.sourcegraph_executor_proxy_password
    EXECUTOR_QUEUE_NAME                 = var.queue_name
    EXECUTOR_QUEUE_NAMES                = length(var.queue_names) > 0 ? join(",", var.queue_names) : null
    EXECUTOR_USE_FIRECRACKER            = tostring(var.use_firecracker)
    EXECUTOR_MAXIMUM_NUM_JOBS           = tostring(var.maximum_num_jobs)
    EXECUTOR_MAXIMUM_RUNTIME_PER_JOB    = var.maximum_runtime_per_job
    EXECUTOR_JOB_NUM_CPUS               = tostring(var.job_num_cpus)
    EXECUTOR_JOB_MEMORY                 = var.job_memory
    EXECUTOR_FIRECRACKER_DISK_SPACE     = var.firecracker_disk_space
    EXECUTOR_NUM_TOTAL_JOBS             = tostring(var.num_total_jobs)
    EXECUTOR_MAX_ACTIVE_TIME            = var.max_active_time
    EXECUTOR_DOCKER_REGISTRY_MIRROR_URL = var.docker_registry_mirror != "" ? var.docker_registry_mirror : null
    DOCKER_REGISTRY_NODE_EXPORTER_URL   = var.docker_registry_node_exporter_url != "" ? var.docker_registry_node_exporter_url : null
    EXECUTOR_VM_PREFIX                  = "executor"
    SRC_LOG_LEVEL                       = var.log_level
  }

  startup_script  = templatefile("${path.module}/startup.sh.tftpl", { agent_setup = module.env.setup_script })
  shutdown_script = templatefile("${path.module}/shutdown.sh.tftpl", {})
  labels          = merge(var.labels, { executor_tag = var.instance_tag })
}

module "env" {
  source                 = "../../../common/executor-env"
  env                    = local.env
  docker_registry_mirror = var.docker_registry_mirror
}

resource "google_service_account" "this" {
  project = var.project_id
  # Account ids allow 30 characters; a digest of the pool's full name keeps them unique and valid.
  account_id   = "executor-${substr(sha1(local.name), 0, 12)}"
  display_name = "executor-fleet ${local.name}"
}

resource "google_project_iam_member" "this" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.this.email}"
}

resource "google_compute_instance_template" "this" {
  project = var.project_id
  # Google allows 37 characters of prefix (it appends a 26-character suffix).
  name_prefix  = "${substr(local.name, 0, 36)}-"
  machine_type = var.machine_type
  tags         = ["executor", local.name] # "executor" is what the networking firewall rules target
  labels       = local.labels

  metadata = {
    startup-script  = local.startup_script
    shutdown-script = local.shutdown_script
  }

  disk {
    source_image = var.image
    disk_size_gb = var.boot_disk_size
    disk_type    = var.boot_disk_type
    boot         = true
    auto_delete  = true
  }

  network_interface {
    subnetwork = var.subnet_id
    dynamic "access_config" {
      for_each = var.assign_public_ip ? [1] : []
      content {}
    }
  }

  advanced_machine_features {
    enable_nested_virtualization = var.use_firecracker
  }

  scheduling {
    preemptible                 = var.preemptible
    automatic_restart           = !var.preemptible
    on_host_maintenance         = var.preemptible ? "TERMINATE" : "MIGRATE"
    provisioning_model          = var.preemptible ? "SPOT" : "STANDARD"
    instance_termination_action = var.preemptible ? "DELETE" : null
  }

  service_account {
    email  = google_service_account.this.email
    scopes = ["cloud-platform"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_region_instance_group_manager" "this" {
  project            = var.project_id
  name               = local.name
  region             = var.region
  base_instance_name = local.name

  version {
    instance_template = google_compute_instance_template.this.id
  }

  # A new image or setting rolls the group; each replaced VM runs its shutdown script, which stops the agent.
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    max_surge_fixed       = 3
    max_unavailable_fixed = 0
  }
}
