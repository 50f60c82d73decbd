output "metric_writer_access_key_id" {
  description = "Access key id for the metrics publisher (EXECUTOR_METRIC_AWS_ACCESS_KEY_ID)."
  value       = aws_iam_access_key.metric_writer.id
}

output "metric_writer_secret_key" {
  description = "Secret key for the metrics publisher (EXECUTOR_METRIC_AWS_SECRET_ACCESS_KEY)."
  value       = aws_iam_access_key.metric_writer.secret
  sensitive   = true
}

output "metric_writer_user_name" {
  description = "Name of the IAM user behind the key."
  value       = aws_iam_user.metric_writer.name
}

output "metric_writer_policy" {
  description = "The IAM policy attached to that user (JSON)."
  value       = local.metric_writer_policy
}

output "metric_writer_region" {
  description = "Region to publish the metric in (EXECUTOR_METRIC_AWS_REGION): `region`, or the provider's."
  value       = local.region
}
