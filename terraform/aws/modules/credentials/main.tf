# The suffix is drawn once and then kept: ignore_changes stops uuid() from renaming the user on every plan.
resource "terraform_data" "suffix" {
  count = var.randomize_resource_names ? 1 : 0
  input = substr(replace(uuid(), "-", ""), 0, 8)

  lifecycle {
    ignore_changes = [input]
  }
}

data "aws_region" "current" {}

locals {
  suffix = var.randomize_resource_names ? "-${terraform_data.suffix[0].output}" : ""
  region = var.region != null ? var.region : data.aws_region.current.name
}

resource "aws_iam_user" "metric_writer" {
  name = "${var.resource_prefix}executor-metric-writer${local.suffix}"
  tags = var.tags
}

# PutMetricData cannot be scoped to a resource ARN; the namespace condition keeps the key to the executor metrics.
locals {
  metric_writer_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "PublishExecutorQueueSize"
      Effect    = "Allow"
      Action    = "cloudwatch:PutMetricData"
      Resource  = "*"
      Condition = { StringEquals = { "cloudwatch:namespace" = var.metrics_namespace } }
    }]
  })
}

resource "aws_iam_user_policy" "metric_writer" {
  name   = "put-executor-metrics"
  user   = aws_iam_user.metric_writer.name
  policy = local.metric_writer_policy
}

resource "aws_iam_access_key" "metric_writer" {
  user = aws_iam_user.metric_writer.name
}
