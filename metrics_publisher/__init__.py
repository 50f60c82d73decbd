"""metrics_publisher."""
