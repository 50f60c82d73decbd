# The suffix is drawn once and then kept: ignore_changes stops uuid() from renaming on every plan.
resource "terraform_data" "suffix" {
  count = var.randomize_resource_names ? 1 : 0
  input = substr(replace(uuid(), "-", ""), 0, 6)

  lifecycle {
    ignore_changes = [input]
  }
}

# Seed 001's block names no project: the provider's is used (`provider "google" { project = ... }`).
data "google_client_config" "current" {}

locals {
  suffix  = var.randomize_resource_names ? terraform_data.suffix[0].output : ""
  project = var.project_id != null ? var.project_id : data.google_client_config.current.project
}

resource "google_service_account" "metric_writer" {
  project = local.project
  # Account ids allow 30 characters: prefix (10) + "exec-metrics" (12) + "-" and the suffix (7).
  account_id   = "${var.resource_prefix}exec-metrics${local.suffix == "" ? "" : "-${local.suffix}"}"
  display_name = "executor-fleet metrics publisher"
}

# The predefined roles/monitoring.metricWriter also allows writing any metric descriptor; creating time series is
# all that publishing needs.
resource "google_project_iam_custom_role" "metric_writer" {
  project     = local.project
  role_id     = replace("${var.resource_prefix}executorMetricWriter${local.suffix}", "-", "_")
  title       = "executor-fleet metric writer"
  description = "Write the executor queue size time series for autoscaling."
  permissions = ["monitoring.timeSeries.create"]
}

resource "google_project_iam_member" "metric_writer" {
  project = local.project
  role    = google_project_iam_custom_role.metric_writer.name
  member  = "serviceAccount:${google_service_account.metric_writer.email}"
}

resource "google_service_account_key" "metric_writer" {
  service_account_id = google_service_account.metric_writer.name
}
