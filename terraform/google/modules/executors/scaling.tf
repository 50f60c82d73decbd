# Queue-driven scaling: with `single_instance_assignment`, the autoscaler sets the group to
# ceil(metric / jobs_per_instance_scaling) instances, clamped to [min_replicas, max_replicas], whatever the current
# size (from zero too). The metric is the publisher's queue size for this pool's queueName and environment.
locals {
  queue_metric_type = "custom.googleapis.com/executors/queue/size"
  queue_metric_filter = join(" AND ", [
    "resource.type = \"global\"",
    "metric.labels.queueName = \"${local.metric_queue_name}\"",
    "metric.labels.environment = \"${var.metrics_environment_label}\"",
  ])
}

resource "google_compute_region_autoscaler" "this" {
  project = var.project_id
  name    = local.name
  region  = var.region
  target  = google_compute_region_instance_group_manager.this.id

  autoscaling_policy {
    min_replicas    = var.min_replicas
    max_replicas    = var.max_replicas
    cooldown_period = var.cooldown_period

    metric {
      name                       = local.queue_metric_type
      filter                     = local.queue_metric_filter
      single_instance_assignment = var.jobs_per_instance_scaling
    }
  }
}
