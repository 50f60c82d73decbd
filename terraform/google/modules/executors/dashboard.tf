resource "google_monitoring_dashboard" "this" {
  count   = var.create_dashboard ? 1 : 0
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "executor-fleet ${local.name}"
    gridLayout = {
      columns = 2
      widgets = [
        {
          title = "${local.metric_queue_name}: queue size"
          xyChart = {
            dataSets = [{
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = "metric.type = \"${local.queue_metric_type}\" AND ${local.queue_metric_filter}"
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
                }
              }
              plotType = "LINE"
            }]
          }
        },
        {
          title = "${local.metric_queue_name}: instances"
          xyChart = {
            dataSets = [{
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = "metric.type = \"compute.googleapis.com/instance_group/size\" AND resource.labels.instance_group_name = \"${local.name}\""
                  aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
                }
              }
              plotType = "LINE"
            }]
          }
        },
      ]
    }
  })
}
