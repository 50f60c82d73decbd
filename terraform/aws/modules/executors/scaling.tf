# Queue-driven scaling. The target is needed = CEIL(queue size / jobs_per_instance_scaling) instances, clamped to
# [min_replicas, max_replicas], set in one step (ExactCapacity) rather than one instance per alarm.
#
# A step policy holds at most 20 step adjustments, so the range 0..max_replicas of `needed` is cut into bands of
# 20. Band b has an alarm on IF(needed in band, needed - 20b, -1) >= 0: only the alarm of the band `needed` falls
# in is in ALARM, and its policy maps needed - 20b to the exact capacity. Auto Scaling alarm actions repeat every
# minute while in ALARM, so the group keeps tracking the queue. With no data (publisher down) no alarm fires and
# the group keeps its size.
locals {
  steps_per_policy = 20
  band_count       = floor(var.max_replicas / local.steps_per_policy) + 1

  scaling_bands = [for b in range(local.band_count) : {
    lower = b * local.steps_per_policy
    last  = b == local.band_count - 1
    steps = [
      for k in range(min(local.steps_per_policy, var.max_replicas - b * local.steps_per_policy + 1)) : {
        lower    = k
        upper    = k == min(local.steps_per_policy, var.max_replicas - b * local.steps_per_policy + 1) - 1 ? null : k + 1
        capacity = min(max(b * local.steps_per_policy + k, var.min_replicas), var.max_replicas)
      }
    ]
  }]

  needed_expression = "CEIL(queue / ${var.jobs_per_instance_scaling})"

  band_expressions = [for band in local.scaling_bands : (
    band.last
    ? "IF(needed >= ${band.lower}, needed - ${band.lower}, -1)"
    : "IF(needed >= ${band.lower} AND needed < ${band.lower + local.steps_per_policy}, needed - ${band.lower}, -1)"
  )]

  # needed_from/needed_to (null: no upper end) -> capacity; what the policies implement, for docs and tests.
  scaling_table = flatten([for band in local.scaling_bands : [for step in band.steps : {
    needed_from = band.lower + step.lower
    # A band's open-ended last step only ever sees needed below the next band (its alarm says -1 otherwise).
    needed_to = step.upper != null ? band.lower + step.upper - 1 : (band.last ? null : band.lower + local.steps_per_policy - 1)
    capacity  = step.capacity
  }]])

  metric_dimensions = {
    queueName   = local.metric_queue_name
    environment = var.metrics_environment_label
  }
}

resource "aws_autoscaling_policy" "scale" {
  count                   = local.band_count
  name                    = "${local.name}-exact-${count.index}"
  autoscaling_group_name  = aws_autoscaling_group.this.name
  policy_type             = "StepScaling"
  adjustment_type         = "ExactCapacity"
  metric_aggregation_type = "Maximum"

  dynamic "step_adjustment" {
    for_each = local.scaling_bands[count.index].steps
    content {
      metric_interval_lower_bound = tostring(step_adjustment.value.lower)
      metric_interval_upper_bound = step_adjustment.value.upper == null ? null : tostring(step_adjustment.value.upper)
      scaling_adjustment          = step_adjustment.value.capacity
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "scale" {
  count               = local.band_count
  alarm_name          = "${local.name}-queue-${count.index}"
  alarm_description   = "Sets ${local.name} to ceil(queue size / ${var.jobs_per_instance_scaling}) instances while that is ${local.scaling_bands[count.index].lower} or more${local.scaling_bands[count.index].last ? "" : " and below ${local.scaling_bands[count.index].lower + local.steps_per_policy}"}."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 0
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "missing"
  alarm_actions       = [aws_autoscaling_policy.scale[count.index].arn]

  metric_query {
    id = "queue"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "src_executors_queue_size"
      period      = 60
      stat        = "Maximum"
      dimensions  = local.metric_dimensions
    }
  }

  metric_query {
    id         = "needed"
    expression = local.needed_expression
  }

  metric_query {
    id          = "band"
    expression  = local.band_expressions[count.index]
    label       = "needed instances above ${local.scaling_bands[count.index].lower}"
    return_data = true
  }

  tags = local.tags
}
