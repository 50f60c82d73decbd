locals {
  queue_metric = ["${var.metrics_namespace}", "src_executors_queue_size", "queueName", local.metric_queue_name, "environment", var.metrics_environment_label]

  dashboard_widgets = [
    {
      type   = "metric"
      x      = 0
      y      = 0
      width  = 12
      height = 6
      properties = {
        title   = "${local.metric_queue_name}: queue size and needed instances"
        region  = data.aws_region.current.name
        stat    = "Maximum"
        period  = 60
        metrics = [concat(local.queue_metric, [{ id = "queue" }]), [{ expression = local.needed_expression, label = "needed instances", id = "needed" }]]
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 0
      width  = 12
      height = 6
      properties = {
        title  = "${local.metric_queue_name}: desired and in-service instances"
        region = data.aws_region.current.name
        stat   = "Maximum"
        period = 60
        metrics = [
          ["AWS/AutoScaling", "GroupDesiredCapacity", "AutoScalingGroupName", local.name],
          ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", local.name],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count          = var.create_dashboard ? 1 : 0
  dashboard_name = local.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
