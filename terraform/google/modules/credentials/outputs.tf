output "metric_writer_credentials_file" {
  description = "Base64 of the service account key file; its decoded content goes into EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE_CONTENT (or a file named by EXECUTOR_METRIC_GOOGLE_APPLICATION_CREDENTIALS_FILE)."
  value       = google_service_account_key.metric_writer.private_key
  sensitive   = true
}

output "metric_writer_service_account_email" {
  description = "Email of the metric writer service account."
  value       = google_service_account.metric_writer.email
}

output "metric_writer_role" {
  description = "Name of the custom role holding only monitoring.timeSeries.create."
  value       = google_project_iam_custom_role.metric_writer.name
}

output "metric_writer_project_id" {
  description = "Project the key may write the metric to (EXECUTOR_METRIC_GCP_PROJECT_ID): `project_id`, or the provider's."
  value       = local.project
}
